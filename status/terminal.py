"""``vidgen jobs``: the job list as a table in the terminal; ``--follow`` keeps it live, with a
progress bar per job, until Ctrl-C."""

from __future__ import annotations

import threading
from datetime import datetime

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from vidgen.config import Settings
from vidgen.db.models import JobStatus
from vidgen.db.queries import JobPage, JobSummary, list_jobs
from vidgen.db.session import Database
from vidgen.errors import VidgenError
from vidgen.holds import current_holds

SHOWN_JOBS = 30
REFRESH_SECONDS = 0.5
STATUS_STYLES = {
    JobStatus.QUEUED: "bright_black",
    JobStatus.ACTIVE: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.CANCELLED: "yellow",
}


def _progress(job: JobSummary) -> Group | Text:
    if job.job_status != JobStatus.ACTIVE:
        return Text(f"{job.progress_percent:.0f} %")
    bar = ProgressBar(total=100, completed=job.progress_percent, width=10)
    return Group(bar, Text(f"{job.progress_percent:.0f} %"))


def _detail(job: JobSummary) -> Text:
    if job.job_status == JobStatus.FAILED and job.error_message:
        return Text(job.error_message, style="red")
    return Text(job.current_stage)


def _local_time(moment: datetime) -> str:
    """The terminal's local time: ``13:20:35`` today, ``11-25 13:20`` before."""
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%m-%d %H:%M")


def jobs_table(page: JobPage) -> Table:
    """The newest jobs, one row each, the way ``vidgen jobs`` shows them."""
    counts = ", ".join(f"{count} {status}" for status, count in sorted(page.status_counts.items()))
    table = Table(
        title=f"vidgen jobs ({page.total} in all{': ' + counts if counts else ''})",
        title_justify="left",
        expand=True,
        box=box.SIMPLE_HEAD,  # no vertical rules: the columns need the room on 80 columns
    )
    table.add_column("Created", no_wrap=True)
    # Minimum widths: on an 80-column terminal rich would otherwise squeeze these to nothing.
    table.add_column("Project", min_width=12)
    table.add_column("Type", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Priority", no_wrap=True)
    table.add_column("Progress", no_wrap=True)
    table.add_column("Stage", min_width=12, ratio=2)
    table.add_column("Job", no_wrap=True, style="bright_black")
    for job in page.jobs:
        table.add_row(
            _local_time(job.created_at),
            Text(job.display_name or job.project_name),
            job.job_type,
            Text(job.job_status, style=STATUS_STYLES.get(JobStatus(job.job_status), "")),
            Text(job.priority, style="bold" if job.priority == "high" else ""),
            _progress(job),
            _detail(job),
            job.id[:8],
        )
    if not page.jobs:
        table.caption = "No jobs yet: drop a manifest into an inbox."
    return table


def jobs_view(settings: Settings, database: Database, limit: int) -> Group:
    """The jobs table, then what holds work back (a PAUSE file, the GPU hours), if anything."""
    holds = current_holds(settings, database).lines()
    return Group(jobs_table(list_jobs(database, 1, limit)), *(Text(line) for line in holds))


def print_jobs(
    settings: Settings,
    database: Database,
    follow: bool,
    console: Console,
    *,
    limit: int = SHOWN_JOBS,
    stop_event: threading.Event | None = None,
) -> None:
    """Print the ``limit`` newest jobs; with ``follow``, redraw them until Ctrl-C (or
    ``stop_event``).

    Raises:
        DatabaseUnavailable: the database does not answer (when not following).
    """
    if not follow:
        console.print(jobs_view(settings, database, limit))
        return
    stop = stop_event or threading.Event()
    with Live(console=console, auto_refresh=False, transient=False) as live:
        try:
            while not stop.is_set():
                live.update(_follow_view(settings, database, limit), refresh=True)
                stop.wait(REFRESH_SECONDS)
        except KeyboardInterrupt:
            return


def _follow_view(settings: Settings, database: Database, limit: int) -> Group | Text:
    try:
        return jobs_view(settings, database, limit)
    except VidgenError as exc:
        # Keep following: the database may be back at the next refresh.
        return Text(f"{exc.user_message} (retrying)", style="red")
