"""The generate stage: a clip's video, from ComfyUI (text- or image-to-video) or imported.

ComfyUI prompts are pipelined one deep: as soon as a clip's prompt is queued, the worker claims
the next clip and queues its prompt too, so the GPU goes from one to the next without waiting
for our download and bookkeeping. A prompt id is recorded before it is sent, so a worker that
dies mid-clip is followed by one that collects the result instead of running it again.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.clip_files import copy_into_work, finish_placed, place_clip, recorded_clip
from stages.ffmpeg_runner import probe
from stages.worker import JobContext
from vidgen.db import jobs
from vidgen.errors import ComfyUIError, ComfyUIExecutionError, ComfyUIInterrupted, JobCancelled
from vidgen.specs import ClipSpec, GenerationMode, clip_spec_from_json
from workflows import build_image_to_video, build_text_to_video
from workflows.comfyui_client import ComfyUIClient
from workflows.comfyui_types import PromptProgress, PromptResult, PromptState

log = logging.getLogger(__name__)

# Where a clip's percent goes: ComfyUI's part, then download and thumbnail.
_QUEUED_PERCENT = 2.0
_COMFYUI_SHARE = 88.0
_VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv")


def clip_spec(context: JobContext) -> ClipSpec:
    return clip_spec_from_json(context.job.job_settings["clip"])


class ImportStage:
    """An imported video becomes a ready clip without a GPU: probe, copy, thumbnail."""

    def run(self, context: JobContext) -> None:
        placed = recorded_clip(context)
        if placed is not None:
            finish_placed(context, placed, None)
            return
        spec = clip_spec(context)
        if spec.video is None:
            raise ValueError(f"job {context.job.id} imports a clip without a video")
        context.progress(10, "probing the imported video")
        source = Path(spec.video)
        probe(source)
        context.progress(40, "copying the imported video")
        work_copy = copy_into_work(context, source, f"import{source.suffix.lower() or '.mp4'}")
        place_clip(context, work_copy, None)

    def prepare(self, context: JobContext) -> None:
        """Nothing to queue ahead of time."""

    def on_failure(self, context: JobContext, message: str) -> None:
        context.note(f"the imported clip failed: {message}", "ERROR")


class GenerateStage:
    """A clip from ComfyUI at one backend; one instance per backend worker."""

    def __init__(self, client: ComfyUIClient) -> None:
        self.client = client

    @property
    def backend(self) -> str:
        return self.client.base_url

    def run(self, context: JobContext) -> None:
        placed = recorded_clip(context)
        if placed is not None:
            submitted = jobs.job_settings(context.database, context.job.id).get("submitted") or {}
            finish_placed(context, placed, submitted.get("graph"))
            return
        prompt_id, graph = self._ensure_submitted(context)
        if context.worker is not None:
            context.worker.prefetch_next()
        result = follow_prompt(self.client, context, prompt_id, self._on_progress)
        self._collect(context, result, graph)

    def on_failure(self, context: JobContext, message: str) -> None:
        context.note(f"generation failed: {message}", "ERROR")

    def prepare(self, context: JobContext) -> None:
        """Queue this job's prompt now (the worker calls it for the job it prefetched)."""
        self._ensure_submitted(context)

    def _ensure_submitted(self, context: JobContext) -> tuple[str, dict[str, Any]]:
        """The prompt of this job in ComfyUI: the one already there, or a new one."""
        job = context.job
        settings = jobs.job_settings(context.database, job.id)
        known = settings.get("submitted") or {}
        prompt_id = known.get("promptId") or job.comfy_prompt_id
        if prompt_id and (known.get("backend") or job.comfy_backend) == self.backend:
            state = self.client.lookup(prompt_id).state
            if state is not PromptState.UNKNOWN:
                context.note(f"found prompt {prompt_id} in ComfyUI ({state.value}); collecting it")
                return prompt_id, known.get("graph") or {}
            context.note(f"ComfyUI no longer knows prompt {prompt_id}; queueing it again")
        return self._submit_new(context)

    def _submit_new(self, context: JobContext) -> tuple[str, dict[str, Any]]:
        spec = clip_spec(context)
        context.progress(1, "preparing the ComfyUI graph")
        graph = self._build(context, spec)
        prompt_id = str(uuid.uuid4())
        # Recorded before it is sent: if we die in between, the next attempt asks ComfyUI.
        jobs.record_prompt(
            context.database, context.job.id, context.job.worker_id, prompt_id, self.backend, graph
        )
        self.client.queue_prompt(graph, prompt_id)
        context.progress(_QUEUED_PERCENT, f"queued in ComfyUI at {self.backend}")
        context.note(f"queued prompt {prompt_id} at {self.backend}")
        return prompt_id, graph

    def _build(self, context: JobContext, spec: ClipSpec) -> dict[str, Any]:
        if spec.mode is GenerationMode.IMAGE_TO_VIDEO:
            if spec.reference_image is None:
                raise ValueError(f"job {context.job.id}: image-to-video without an image")
            context.progress(1, "uploading the reference image")
            reference = Path(spec.reference_image)
            name = f"vidgen-{context.job.id}{reference.suffix.lower()}"
            uploaded = self.client.upload(reference, name)
            return build_image_to_video(spec, context.job.id, uploaded)
        return build_text_to_video(spec, context.job.id)

    def _on_progress(self, context: JobContext, progress: PromptProgress) -> None:
        percent = _QUEUED_PERCENT + _COMFYUI_SHARE * progress.fraction
        stage = f"ComfyUI: {progress.class_type or 'working'}"
        if progress.max > 1:
            stage = f"{stage} {progress.value}/{progress.max}"
        # A cancel is seen by should_cancel on the client's next check, which stops the prompt.
        with contextlib.suppress(JobCancelled):
            context.progress(percent, stage)

    def _collect(self, context: JobContext, result: PromptResult, graph: dict[str, Any]) -> None:
        videos = [o for o in result.outputs if o.filename.lower().endswith(_VIDEO_SUFFIXES)]
        if not videos:
            raise ComfyUIError(f"ComfyUI finished prompt {result.prompt_id} but wrote no video")
        output = videos[0]
        context.progress(91, "downloading the clip from ComfyUI")
        partial = context.work_dir / f"clip{Path(output.filename).suffix.lower()}"
        self.client.download(output, partial)
        probe(partial)  # a truncated download fails here, before anything is registered
        place_clip(context, partial, graph)


def follow_prompt(
    client: ComfyUIClient,
    context: JobContext,
    prompt_id: str,
    on_progress: Callable[[JobContext, PromptProgress], None],
) -> PromptResult:
    """Follow a prompt to its end: stopped in ComfyUI on a user's cancel or after
    ``promptTimeoutSeconds`` (a stalled GPU must not hold a job forever), left running there
    at shutdown."""
    timeout_s = context.settings.comfyui.prompt_timeout_seconds
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def should_cancel() -> bool:
        nonlocal timed_out
        if context.shutdown.is_set():
            # Stop following without touching the prompt: it keeps running in ComfyUI and its
            # result is collected when vidgen starts again (DESIGN.md, Jobs and workers).
            raise JobCancelled("vidgen is stopping")
        timed_out = time.monotonic() > deadline
        return timed_out or context.cancel.is_set()

    try:
        return client.follow(prompt_id, lambda p: on_progress(context, p), should_cancel)
    except ComfyUIInterrupted as exc:
        if timed_out:
            raise ComfyUIExecutionError(
                f"ComfyUI at {client.base_url} did not finish within {timeout_s:g} s "
                "(comfyui.promptTimeoutSeconds); the prompt was stopped"
            ) from exc
        raise
