"""The worker loop: claim a job, keep its lease, run its stage, and settle it.

One worker per ComfyUI backend (``RunsOn.COMFYUI``: generation and exports with a ComfyUI
stage) and ``jobs.cpuWorkers`` CPU workers (imported clips, FFmpeg-only exports). Retries are
decided in one place, ``_settle_failure``; the one catch-all lives in ``_guarded``.

Pipelining is decided here, not in the stages: a stage's ``prepare`` sends what the backend can
queue (a clip's prompt); when it did, the worker claims and prepares the next job before it
``run``s (collects) the first, so the GPU goes from one prompt to the next without waiting for
our download and bookkeeping. One prompt runs, at most one waits behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stages.leases import LeaseKeeper
from vidgen.config import Settings
from vidgen.db import claims, jobs
from vidgen.db.jobs import ClaimedJob, LeaseState
from vidgen.db.models import JobType, RunsOn
from vidgen.db.queries import SentPrompt
from vidgen.db.session import Database
from vidgen.errors import ComfyUIInterrupted, DatabaseUnavailable, JobCancelled, VidgenError
from vidgen.holds import current_holds
from vidgen.logs import job_context, stage_var, worker_id_var
from vidgen.safe_files import free_bytes
from vidgen.shown_paths import ShownPaths
from vidgen.specs import GenerateRequest
from workflows import ComfyUIClient

log = logging.getLogger(__name__)

_ATTEMPT = "attempt-"


@dataclass
class JobContext:
    """What a stage is handed: the job, where it may write, and how to report."""

    job: ClaimedJob
    settings: Settings
    database: Database
    cancel: threading.Event  # set on a user's cancel, a lost lease, and at shutdown
    shutdown: threading.Event  # set at shutdown only
    # Set at shutdown and when the job was taken from us: its prompts in ComfyUI are left to
    # run, to be collected by whoever holds the job next; a user's cancel interrupts them.
    leave: threading.Event = field(default_factory=threading.Event)
    sent: dict[str, SentPrompt] = field(default_factory=dict)  # prompts of this attempt, by step
    # Clients of other backends an earlier attempt sent prompts to (stages/prompts.py).
    other_backends: dict[str, ComfyUIClient] = field(default_factory=dict)
    queued: bool | None = None  # what ``prepare`` said: None until it ran
    _last_percent: float = field(default=-1.0)
    _work_dir: Path | None = field(default=None, init=False, repr=False)
    # How this machine's folders are written in what a person reads (log lines, errors).
    shown: ShownPaths = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.shown = ShownPaths.from_settings(self.settings)

    @property
    def work_path(self) -> Path:
        """Where ``work_dir`` is, without making it (or clearing earlier attempts')."""
        job_dir = job_work_dir(self.settings, self.job.project_name, self.job.id)
        return job_dir / f"{_ATTEMPT}{self.job.attempts}"

    @property
    def work_dir(self) -> Path:
        """The only folder a stage writes to before publishing (docs/architecture.md): this
        attempt's own, ``work/{jobId}/attempt-{N}``. Made on first use, when what earlier
        attempts left there goes, so no two attempts ever share one."""
        if self._work_dir is None:
            job_dir = job_work_dir(self.settings, self.job.project_name, self.job.id)
            for earlier in _attempt_dirs(job_dir):
                shutil.rmtree(earlier, ignore_errors=True)
            self._work_dir = self.work_path
            self._work_dir.mkdir(parents=True, exist_ok=True)
        return self._work_dir

    def remove_work(self) -> None:
        """At the end of this attempt: its folder goes, and older attempts' with it; the job's
        folder goes too unless a newer attempt (one that took the job from us) works there."""
        job_dir = job_work_dir(self.settings, self.job.project_name, self.job.id)
        for attempt in _attempt_dirs(job_dir):
            if _attempt_number(attempt) <= self.job.attempts:
                shutil.rmtree(attempt, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty (a newer attempt's), or already gone
            job_dir.rmdir()

    def close(self) -> None:
        """The job leaves this worker: close what it opened."""
        for client in self.other_backends.values():
            client.close()
        self.other_backends.clear()

    def let_go(self) -> None:
        """The job is no longer ours: stop, leaving its prompt running for the new owner."""
        self.leave.set()
        self.cancel.set()

    def progress(self, percent: float, stage: str) -> None:
        """Write progress (at most every half percent) and stop if the job was cancelled."""
        stage_var.set(stage)
        if abs(percent - self._last_percent) < 0.5 and percent < 100:
            self.check_cancelled()
            return
        self._last_percent = percent
        try:
            state = jobs.report_progress(
                self.database, self.job.id, self.job.worker_id, percent, stage
            )
        except DatabaseUnavailable as exc:
            # Progress is advisory: the work goes on while the database restarts.
            log.warning("could not write progress: %s", exc)
            state = LeaseState.OURS
        if state is LeaseState.LOST:
            self.let_go()
        elif state is LeaseState.CANCEL_REQUESTED:
            self.cancel.set()
        self.check_cancelled()

    def note(self, message: str, level: str = "INFO") -> None:
        """A line for a person: the log and the job's log on the status page."""
        log.log(logging.getLevelName(level), "%s", message)
        jobs.write_log(self.database, self.job.id, level, self.shown.text(message))

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled("the job was cancelled")


class Stage(ABC):
    """What runs one job type: ``prepare`` starts what a backend can queue (a ComfyUI prompt)
    and says whether it did; ``run`` does (or collects) the work; ``on_failure`` tells the user."""

    @abstractmethod
    def prepare(self, context: JobContext) -> bool: ...

    @abstractmethod
    def run(self, context: JobContext) -> None: ...

    @abstractmethod
    def on_failure(self, context: JobContext, message: str) -> None: ...

    def space_needed(self, context: JobContext) -> list[tuple[Path, int]]:  # noqa: ARG002
        """About how many bytes the job will write, by folder, checked before it starts; what
        cannot be estimated is left out (``run`` reports what is wrong)."""
        return []


def job_work_dir(settings: Settings, project_name: str, job_id: str) -> Path:
    """``storage/{projectName}/work/{jobId}``: the attempts' folders are inside."""
    return settings.storage / project_name / "work" / job_id


def _attempt_dirs(job_dir: Path) -> list[Path]:
    return [p for p in job_dir.glob(f"{_ATTEMPT}*") if _attempt_number(p) >= 0]


def _attempt_number(folder: Path) -> int:
    """N of ``attempt-N``; -1 for a name that is no attempt's."""
    number = folder.name.removeprefix(_ATTEMPT)
    return int(number) if number.isdigit() else -1


def make_worker_id(kind: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{kind}"


class Worker:
    """Claims jobs of one kind and runs them until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        runs_on: RunsOn,
        stages: dict[JobType, Stage],
        *,
        backend: str | None = None,
        name: str | None = None,
        backend_probe: Callable[[], bool] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.runs_on = runs_on
        self.backend = backend
        self.stages = stages
        self.backend_probe = backend_probe
        self.on_stop = on_stop
        self._backend_was_ready = True
        self.worker_id = make_worker_id(name or (backend or runs_on.value))
        self.leases = LeaseKeeper(database, settings, self.worker_id)
        self.stop_event = threading.Event()
        self.last_checkpoint: str | None = None
        self._hold: str | None = None  # why claiming waits (a PAUSE file, GPU hours), if it does
        self._next: JobContext | None = None  # claimed and prepared behind the current job
        self._thread = threading.Thread(target=self.run, name=self.worker_id, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Claim nothing new; stop what runs (ffmpeg stops, ComfyUI prompts keep running)."""
        self.stop_event.set()
        self.leases.let_go_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; False if it is still busy (then call ``release_held``)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def release_held(self) -> None:
        """Give back every job still held, so the next start takes them up at once."""
        for job_id in self.leases.held():
            try:
                jobs.release(self.database, job_id, self.worker_id)
            except DatabaseUnavailable as exc:
                log.warning("could not release job %s: %s (its lease will expire)", job_id, exc)

    def run(self) -> None:
        worker_id_var.set(self.worker_id)
        self.leases.start()
        log.info("worker %s started (%s)", self.worker_id, self.backend or self.runs_on.value)
        try:
            while not self.stop_event.is_set():
                if not self._backend_ready():
                    self.stop_event.wait(self.settings.comfyui.wait_for_backend_seconds)
                    continue
                context, self._next = self._next or self._claimed_context(), None
                if context is None:
                    self.stop_event.wait(self.settings.jobs.poll_seconds)
                    continue
                try:
                    self._work_on(context)
                except DatabaseUnavailable as exc:
                    # The job's outcome could not be written; its lease runs out and it is
                    # taken up again (by us or another worker) once the database is back.
                    log.warning("job %s left to its lease: %s", context.job.id, exc)
                    self.stop_event.wait(self.settings.jobs.retry_backoff_seconds)
                finally:
                    self.leases.drop(context.job.id)
                    context.close()
        finally:
            self.leases.stop()
            if self.on_stop is not None:
                self.on_stop()
            log.info("worker %s stopped", self.worker_id)

    def _work_on(self, context: JobContext) -> None:
        """Prepare the job (unless that was done while the previous one ran); when that queued
        work on the backend, claim and prepare the next job behind it; then run this one."""
        if context.queued is None and not self._prepare(context):
            return
        if context.queued and self._next is None and not self.stop_event.is_set():
            self._next = self._prepare_next()
        if self._guarded(context, self.stages[context.job.job_type].run):
            self._cleanup(context)

    def _prepare(self, context: JobContext) -> bool:
        """Run the stage's ``prepare``; False when it failed (the job is settled then)."""

        def prepare(ctx: JobContext) -> None:
            ctx.queued = self.stages[ctx.job.job_type].prepare(ctx)

        return self._guarded(context, prepare)

    def _prepare_next(self) -> JobContext | None:
        context = self._claimed_context()
        if context is not None and not self._prepare(context):
            self.leases.drop(context.job.id)
            context.close()
            return None
        return context

    def _claimed_context(self) -> JobContext | None:
        job = self._claim()
        if job is None:
            return None
        held = self.leases.hold(job.id)
        context = JobContext(
            job, self.settings, self.database, held.cancel, self.stop_event, leave=held.leave
        )
        if not self._room_for(context):
            self.leases.drop(job.id)
            return None
        return context

    def _backend_ready(self) -> bool:
        """Whether this worker's backend answers; while it does not, its queued jobs say so."""
        if self.backend_probe is None:
            return True
        ready = self.backend_probe()
        if not ready:
            reason = f"waiting for ComfyUI at {self.backend}"
            if self._backend_was_ready:
                log.warning("%s (it does not answer)", reason)
            try:
                jobs.note_waiting(self.database, self.runs_on, reason)
            except DatabaseUnavailable as exc:
                log.warning("cannot note the wait: %s", exc)
        elif not self._backend_was_ready:
            log.info("ComfyUI at %s answers again", self.backend)
        self._backend_was_ready = ready
        return ready

    def _held(self) -> bool:
        """Whether a PAUSE file or the GPU hours hold claiming back; the queued jobs of this
        worker's kind say so, and say "queued" again once it is over."""
        reason = current_holds(self.settings, self.database).reason(self.runs_on)
        try:
            if reason is not None:
                jobs.note_waiting(self.database, self.runs_on, reason)
            elif self._hold is not None:
                jobs.note_waiting(self.database, self.runs_on, "queued")
        except DatabaseUnavailable as exc:
            log.warning("cannot note the wait: %s", exc)
        if reason != self._hold:
            log.info("worker %s: %s", self.worker_id, reason or "claiming again")
        self._hold = reason
        return reason is not None

    def _claim(self) -> ClaimedJob | None:
        if self._held():
            return None
        try:
            job = claims.claim_next(
                self.database,
                self.worker_id,
                self.runs_on,
                lease_seconds=self.settings.jobs.lease_seconds,
                max_attempts=self.settings.jobs.max_attempts,
                backend=self.backend,
                prefer_checkpoint=self.last_checkpoint,
                backend_takeover_seconds=self.settings.jobs.backend_takeover_seconds,
            )
        except DatabaseUnavailable as exc:
            log.warning("cannot claim jobs: %s", exc)
            return None
        if job is not None and isinstance(job.request, GenerateRequest):
            self.last_checkpoint = job.request.clip.checkpoint
        return job

    def _room_for(self, context: JobContext) -> bool:
        """Whether the folders a new job writes to have room for it (``minFreeBytes`` kept
        free); if not, it goes back to the queue saying so, instead of failing half-way. A job
        taken up again after a crash is not held: most of it is written already."""
        job = context.job
        if job.attempts > 1 or job.prompts:
            return True
        for folder, needed in self.stages[job.job_type].space_needed(context):
            free = free_bytes(folder) - self.settings.min_free_bytes
            if needed <= free:
                continue
            reason = (
                f"waiting for disk space: needs about {needed / 1e6:.1f} MB in "
                f"{context.shown.path(folder)}, {max(free, 0) / 1e6:.1f} MB free above minFreeBytes"
            )
            log.warning("job %s %s", job.id, reason)
            delay = self.settings.jobs.retry_backoff_max_seconds
            jobs.postpone(self.database, job.id, self.worker_id, reason, delay)
            return False
        return True

    def _guarded(self, context: JobContext, step: Callable[[JobContext], None]) -> bool:
        """Run one step of a job; any failure settles the job. True if the step succeeded."""
        job = context.job
        with job_context(job.id, job.job_type.value):
            try:
                step(context)
            except (JobCancelled, ComfyUIInterrupted) as exc:
                self._settle_cancel(context, exc)
            except VidgenError as exc:
                self._settle_failure(context, exc)
            except Exception:  # the one catch-all: a worker must not die of one job
                log.exception("internal error in job %s", job.id)
                self._fail(context, f"internal error, see the log for job {job.id}")
            else:
                return True
        return False

    def _settle_cancel(self, context: JobContext, exc: VidgenError) -> None:
        if context.shutdown.is_set() and not self._cancel_requested(context):
            # Shutdown, not a user's cancel: give the job back; its prompt keeps running.
            jobs.release(self.database, context.job.id, self.worker_id)
            return
        if context.cancel.is_set():
            jobs.mark_cancelled(self.database, context.job.id, self.worker_id)
            self._cleanup(context)
            return
        self._settle_failure(context, exc)

    def _cancel_requested(self, context: JobContext) -> bool:
        state = jobs.renew_lease(
            self.database, context.job.id, self.worker_id, self.settings.jobs.lease_seconds
        )
        return state is LeaseState.CANCEL_REQUESTED

    def _settle_failure(self, context: JobContext, exc: VidgenError) -> None:
        """Retry a transient failure with backoff; fail for good otherwise."""
        job = context.job
        if exc.retryable and job.attempts < self.settings.jobs.max_attempts:
            delay = min(
                self.settings.jobs.retry_backoff_seconds * 2 ** (job.attempts - 1),
                self.settings.jobs.retry_backoff_max_seconds,
            )
            log.warning("job %s: %s (retrying in %.1f s)", job.id, exc.user_message, delay)
            shown = context.shown.text(exc.user_message)
            jobs.retry_later(self.database, job.id, self.worker_id, shown, delay)
            return
        self._fail(context, exc.user_message)

    def _fail(self, context: JobContext, reason: str) -> None:
        log.error("job %s failed: %s", context.job.id, reason)
        # The job's error, its clips' and the error file name no folder of this machine.
        message = context.shown.text(reason)
        # Reported while the job is still ours (an export records its report's name), then
        # failed: a worker dying in between is followed by one that reports nothing twice.
        try:
            self.stages[context.job.job_type].on_failure(context, message)
        except (VidgenError, OSError):
            log.exception("could not report the failure of job %s", context.job.id)
        jobs.fail(self.database, context.job.id, self.worker_id, message)
        self._cleanup(context)

    def _cleanup(self, context: JobContext) -> None:
        context.remove_work()
