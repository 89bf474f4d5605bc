"""How things read on the pages: times, durations, a job's stages from its log, which player a
file gets. Pure functions of the read models; the templates call them as filters."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from vidgen.db.models import JobStatus
from vidgen.db.queries import JobDetail
from vidgen.shown_paths import ShownPaths

# What a browser plays: H.264 mp4 and WebM in <video>, GIF as an image. H.265 plays in few
# browsers, so it is offered as a download.
VIDEO_FORMATS = frozenset({"mp4", "webm", "m4v"})
IMAGE_FORMATS = frozenset({"gif"})
UNPLAYABLE_FORMATS = frozenset({"mp4-h265", "h265", "hevc"})


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a job as its log tells it: from one INFO line to the next."""

    label: str
    started_at: datetime
    duration_sec: float | None  # None for the line that marks the end
    level: str
    running: bool = False


def when(moment: datetime | None) -> str:
    """``2026-11-26 14:03:07 UTC``; the page's script shows it in the reader's time zone."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


def media_kind(file_name: str, output_format: str = "") -> str:
    """``video``, ``image`` or ``download``: how the page offers this file."""
    fmt = output_format.lower()
    if fmt in UNPLAYABLE_FORMATS:
        return "download"
    extension = PurePath(file_name).suffix.lstrip(".").lower()
    if extension in VIDEO_FORMATS:
        return "video"
    if extension in IMAGE_FORMATS:
        return "image"
    return "download"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def job_stages(detail: JobDetail, now: datetime) -> list[Stage]:
    """The job's steps with their durations: each log line (DEBUG aside) starts one, which lasts
    until the next; the last one of a running job is still going, that of an ended job marks
    the end."""
    lines = [line for line in detail.logs if line.level != "DEBUG"]
    finished = detail.job.job_status not in (JobStatus.QUEUED, JobStatus.ACTIVE)
    stages: list[Stage] = []
    for line, following in zip(lines, [*lines[1:], None], strict=True):
        running = following is None and not finished
        if following is not None:
            length: float | None = (following.created_at - line.created_at).total_seconds()
        else:
            length = (now - line.created_at).total_seconds() if running else None
        stages.append(Stage(line.message, line.created_at, length, line.level, running))
    return stages


def job_timings(detail: JobDetail, now: datetime) -> dict[str, float | None]:
    """Seconds waited in the queue, seconds run, seconds in all."""
    job = detail.job
    end = job.completed_at or now
    started = job.started_at
    return {
        "waited": ((started or end) - job.created_at).total_seconds(),
        "ran": (end - started).total_seconds() if started else None,
        "total": (end - job.created_at).total_seconds(),
    }


def shown_job(detail: JobDetail, shown: ShownPaths) -> JobDetail:
    """The job as a reader may see it: its settings (the stored clip's paths, the outbox) and
    graphs with paths relative to storage or the outbox, its log and error likewise."""
    job = detail.job
    return replace(
        detail,
        job=replace(
            job,
            error_message=shown.text(job.error_message) if job.error_message else None,
            current_stage=shown.text(job.current_stage),
        ),
        logs=[replace(line, message=shown.text(line.message)) for line in detail.logs],
        job_settings=shown.json(detail.job_settings),
        prompts=tuple(replace(p, graph=shown.json(p.graph)) for p in detail.prompts),
    )
