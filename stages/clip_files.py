"""Placing a finished clip: probe, thumbnail, conventional names, then the Clip row — in an
order that leaves no orphan file and no row pointing at nothing, whatever moment a worker dies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.worker import JobContext
from vidgen.db import jobs
from vidgen.db.jobs import PlacedClip
from vidgen.ffmpeg import extract_thumbnail, probe
from vidgen.naming import FileType, allocate_path, publish, publish_shared
from vidgen.specs import JobOutputs


def place_clip(
    context: JobContext, video: Path, workflow: dict[str, Any] | None, *, shared: bool = False
) -> None:
    """Move ``video`` (in the work folder) into storage under its conventional name, with a
    thumbnail, and mark the clip ready. ``shared``: ``video`` is a stored file that stays (an
    imported clip's reference); the clip is a second name of it, not a copy."""
    project_dir = context.settings.storage / context.job.project_name
    extension = video.suffix.lstrip(".").lower() or "mp4"
    name = context.job.project_name
    clip_path = allocate_path(
        context.database, project_dir / "clips", name, FileType.CLIP, extension
    )
    thumb_path = allocate_path(
        context.database, project_dir / "thumbnails", name, FileType.THUMB, "jpg"
    )
    # The names are recorded before the files are moved: a worker that dies after the move
    # finds them on its next attempt instead of leaving orphans.
    outputs = JobOutputs(clip=str(clip_path), thumbnail=str(thumb_path))
    if not jobs.record_outputs(context.database, context.job.id, context.job.worker_id, outputs):
        return
    (publish_shared if shared else publish)(video, clip_path)
    _finish(context, clip_path, thumb_path, workflow)


def finish_placed(context: JobContext, clip_path: Path, workflow: dict[str, Any] | None) -> None:
    """Thumbnail (again, if missing) and the Clip row for a clip an earlier attempt placed."""
    thumbnail = context.job.outputs.thumbnail
    _finish(context, clip_path, Path(thumbnail or clip_path.with_suffix(".jpg")), workflow)


def _finish(
    context: JobContext, clip_path: Path, thumb_path: Path, workflow: dict[str, Any] | None
) -> None:
    context.progress(95, "making the thumbnail")
    # A clip is a user's imported video or ComfyUI's output: read as a file vidgen did not make.
    info = probe(clip_path, untrusted=True)
    if not thumb_path.is_file():
        partial = context.work_dir / "thumbnail.jpg"
        extract_thumbnail(clip_path, partial, untrusted=True)
        publish(partial, thumb_path)
    placed = PlacedClip(
        file_path=str(clip_path),
        thumbnail_path=str(thumb_path),
        duration_sec=info.duration_sec,
        frame_count=info.frame_count,
        width=info.width,
        height=info.height,
        workflow=workflow,
    )
    jobs.complete_generate(context.database, context.job.id, context.job.worker_id, placed)
    context.note(
        f"clip ready: {clip_path.name} ({info.width}x{info.height}, {info.frame_count} frames, "
        f"{info.duration_sec:.2f} s)"
    )
