"""``vidgen gc``, also run by `vidgen run` every ``gc.everyHours``: storage that takes care of
itself. It removes the work folders of ended jobs (an export's, its intermediate files, once
``gc.keepExportWorkDays`` have passed since it ended) and the files of clips marked removed
(left out of their newest manifest) that no live job uses. It never touches an outbox, the
inputs or work folder of a queued or active job, or a clip of any current manifest.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from vidgen.config import Settings
from vidgen.db.models import JobType
from vidgen.db.session import Database
from vidgen.db.storage_use import StorageUse, forget_clip_files, storage_use
from vidgen.db.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class Freed:
    """What one kind of clean-up removed."""

    what: str
    items: int = 0
    files: int = 0
    bytes: int = 0

    def add(self, files: int, size: int) -> None:
        self.items += 1
        self.files += files
        self.bytes += size


@dataclass
class GCReport:
    work: Freed = field(default_factory=lambda: Freed("work folders of ended jobs"))
    clips: Freed = field(default_factory=lambda: Freed("clips marked removed"))

    @property
    def bytes(self) -> int:
        return self.work.bytes + self.clips.bytes

    @property
    def files(self) -> int:
        return self.work.files + self.clips.files

    def lines(self) -> list[str]:
        """What ``vidgen gc`` prints: one line per kind, then the sum."""
        lines = [
            f"{part.what}: {part.items} ({part.files} files, {part.bytes:,} bytes)"
            for part in (self.work, self.clips)
        ]
        return [*lines, f"freed {_size(self.bytes)} ({self.bytes:,} bytes) in {self.files} files"]


def collect_garbage(settings: Settings, database: Database) -> GCReport:
    """One pass over storage; safe beside running workers and intake, on any host."""
    report = GCReport()
    use = storage_use(database)
    for folder in _work_folders(settings.storage):
        if _removable(folder.name, use, settings):
            report.work.add(*_remove_tree(folder))
    for clip_id in use.removed_clips:
        files, size = 0, 0
        for path in map(Path, forget_clip_files(database, clip_id)):
            if _inside(path, settings.storage) and path.is_file():
                size += path.stat().st_size
                path.unlink(missing_ok=True)
                files += 1
        if files:
            report.clips.add(files, size)
    log.info("storage cleaned: %s", "; ".join(report.lines()))
    return report


def _work_folders(storage: Path) -> list[Path]:
    """``storage/{projectName}/work/{jobId}``: every stage's only place to write."""
    return sorted(p for p in storage.glob("*/work/*") if p.is_dir() and not p.is_symlink())


def _removable(job_id: str, use: StorageUse, settings: Settings) -> bool:
    if job_id in use.live_jobs:
        return False
    ended = use.ended_jobs.get(job_id)
    if ended is None:  # a job of no database we know: nothing can use it
        return True
    if ended.job_type == JobType.EXPORT:
        kept = timedelta(days=settings.gc.keep_export_work_days)
        return ended.ended_at < utcnow() - kept
    return True


def _remove_tree(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    size = sum(p.stat().st_size for p in files)
    shutil.rmtree(folder, ignore_errors=True)
    return len(files), size


def _inside(path: Path, folder: Path) -> bool:
    """Only files under storage are ever removed, whatever a row says."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
