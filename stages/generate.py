"""The generate stage: a clip's video, from ComfyUI (text- or image-to-video) or imported.

``GenerateStage.prepare`` queues the clip's prompt (the worker then prepares the next clip behind
it); ``run`` follows the prompt to its end and places the video. The prompt is recorded before it
is sent, so a worker that dies mid-clip is followed by one that collects the result instead of
running it again.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from typing_extensions import override

from stages import encode
from stages.clip_files import finish_placed, place_clip
from stages.prompts import collect, ensure_prompt, prompt_client
from stages.worker import JobContext, Stage
from vidgen.db.queries import SentPrompt
from vidgen.errors import JobCancelled, StorageError
from vidgen.ffmpeg import probe
from vidgen.specs import ClipSpec, GenerationMode, Quality
from workflows import (
    ComfyUIClient,
    Graph,
    PromptProgress,
    build_image_to_video,
    build_text_to_video,
    reference_upload_name,
)

log = logging.getLogger(__name__)

# Where a clip's percent goes: ComfyUI's part, then download and thumbnail.
_QUEUED_PERCENT = 2.0
_COMFYUI_SHARE = 88.0
_STEP = "clip"


class ImportStage(Stage):
    """An imported video becomes a ready clip without a GPU: probe, place, thumbnail.

    The video is intake's checked copy in the project's refs/ (a plain container, or intake
    would have refused it); the clip is a second name of that file, so a video named by many
    clips is stored once, and the export reads vidgen's copy, never the user's file."""

    @override
    def prepare(self, context: JobContext) -> bool:
        """Nothing to queue ahead of time."""
        return False

    @override
    def run(self, context: JobContext) -> None:
        placed = context.job.outputs.clip
        if placed is not None and Path(placed).is_file():
            finish_placed(context, Path(placed), None)
            return
        spec = context.job.generate.clip
        if spec.video is None:
            raise ValueError(f"job {context.job.id} imports a clip without a video")
        context.progress(10, "probing the imported video")
        source = Path(spec.video)
        if not source.is_file():
            raise StorageError(f"the stored input {source.name} is missing from storage")
        probe(source, untrusted=True)
        context.progress(40, "placing the imported video")
        place_clip(context, source, None, shared=True)

    @override
    def on_failure(self, context: JobContext, message: str) -> None:
        context.note(f"the imported clip failed: {message}", "ERROR")


class GenerateStage(Stage):
    """A clip from ComfyUI at one backend; one instance per backend worker."""

    def __init__(self, client: ComfyUIClient) -> None:
        self.client = client

    @override
    def prepare(self, context: JobContext) -> bool:
        """Queue this job's prompt (unless its video is made already); True when one is queued."""
        if self._placed(context) is not None:
            return False
        self._prompt(context)
        return True

    @override
    def run(self, context: JobContext) -> None:
        placed = self._placed(context)
        recorded = context.job.last_prompt(_STEP)
        if placed is not None:
            finish_placed(context, placed, recorded.graph if recorded else None)
            return
        prompt = self._prompt(context)
        result = collect(self.client, context, prompt, lambda p: self._on_progress(context, p))
        context.progress(91, "downloading the clip from ComfyUI")
        holder = prompt_client(self.client, context, prompt)
        video = holder.download_video(result, context.work_dir / "clip")
        probe(video)  # a truncated download fails here, before anything is registered
        place_clip(context, video, prompt.graph)

    @override
    def on_failure(self, context: JobContext, message: str) -> None:
        context.note(f"generation failed: {message}", "ERROR")

    @override
    def space_needed(self, context: JobContext) -> list[tuple[Path, int]]:
        """The download in the work folder, then the clip placed in storage."""
        clip = context.job.generate.clip
        pixels = clip.width * clip.height
        size = encode.encoded_bytes(
            None, Quality.STANDARD, pixels=pixels, frames=clip.frames, fps=clip.frame_rate
        )
        return [(context.work_path, 2 * size)]

    @staticmethod
    def _placed(context: JobContext) -> Path | None:
        """The clip a previous attempt already put in place (it died before the row was written)."""
        placed = context.job.outputs.clip
        return Path(placed) if placed is not None and Path(placed).is_file() else None

    def _prompt(self, context: JobContext) -> SentPrompt:
        prompt = ensure_prompt(self.client, context, _STEP, lambda: self._build(context))
        context.progress(_QUEUED_PERCENT, f"queued in ComfyUI at {prompt.backend}")
        return prompt

    def _build(self, context: JobContext) -> Graph:
        spec: ClipSpec = context.job.generate.clip
        context.progress(1, "preparing the ComfyUI graph")
        if spec.mode is GenerationMode.IMAGE_TO_VIDEO:
            if spec.reference_image is None:
                raise ValueError(f"job {context.job.id}: image-to-video without an image")
            context.progress(1, "uploading the reference image")
            reference = Path(spec.reference_image)
            name = reference_upload_name(context.job.id, reference)
            uploaded = self.client.upload(reference, name)
            return build_image_to_video(spec, context.job.id, uploaded)
        return build_text_to_video(spec, context.job.id)

    def _on_progress(self, context: JobContext, progress: PromptProgress) -> None:
        percent = _QUEUED_PERCENT + _COMFYUI_SHARE * progress.fraction
        stage = f"ComfyUI: {progress.class_type or 'working'}"
        if progress.max > 1:
            stage = f"{stage} {progress.value}/{progress.max}"
        # A cancel is seen by the client's next check, which stops the prompt.
        with contextlib.suppress(JobCancelled):
            context.progress(percent, stage)
