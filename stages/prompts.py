"""A job's ComfyUI prompts: each recorded before it is sent, looked up before it is sent again.

Generation (one prompt per clip) and export steps (Real-ESRGAN chunks, RIFE) both go through
``ensure_prompt`` and ``collect``, so a worker that dies at any moment is followed by one that
finds the prompt in ComfyUI (``/queue``, then ``/history``) and collects it, instead of running
it a second time on the GPU.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from stages.worker import JobContext
from vidgen.db import jobs
from vidgen.db.queries import SentPrompt
from vidgen.errors import ComfyUIInterrupted, ComfyUIUnavailable, JobCancelled
from workflows import ComfyUIClient, Graph, PromptProgress, PromptResult, PromptState


def ensure_prompt(
    client: ComfyUIClient, context: JobContext, step: str, build: Callable[[], Graph]
) -> SentPrompt:
    """The prompt of ``step`` in ComfyUI: sent by this attempt, sent by an earlier one and still
    known to the backend it went to (queued, running or in its history; that may be another
    backend than ours, whose worker is gone), or else built and sent now to ours."""
    if step in context.sent:
        return context.sent[step]
    recorded = context.job.last_prompt(step)
    if recorded is not None:
        holder = prompt_client(client, context, recorded)
        state = _known_state(holder, recorded, ours=holder is client)
        if state is not PromptState.UNKNOWN:
            context.note(
                f"found prompt {recorded.prompt_id} in ComfyUI at {recorded.backend} "
                f"({state.value})"
            )
            context.sent[step] = recorded
            return recorded
        context.note(
            f"ComfyUI at {recorded.backend} no longer has prompt {recorded.prompt_id}; "
            f"sending it again to {client.base_url}"
        )
    prompt = SentPrompt(step, str(uuid.uuid4()), client.base_url, build())
    # Recorded before it is sent: if we die in between, the next attempt asks ComfyUI.
    if not jobs.record_prompt(context.database, context.job.id, context.job.worker_id, prompt):
        context.let_go()
        raise JobCancelled("the job was taken over by another worker")
    client.queue_prompt(prompt.graph, prompt.prompt_id)
    context.note(f"queued prompt {prompt.prompt_id} ({step}) at {client.base_url}")
    context.sent[step] = prompt
    return prompt


def prompt_client(client: ComfyUIClient, context: JobContext, prompt: SentPrompt) -> ComfyUIClient:
    """The client of the backend ``prompt`` went to: ours, or another one (opened once per job)."""
    if prompt.backend == client.base_url:
        return client
    other = context.other_backends.get(prompt.backend)
    if other is None:
        other = ComfyUIClient(prompt.backend, context.settings.comfyui)
        context.other_backends[prompt.backend] = other
    return other


def _known_state(holder: ComfyUIClient, prompt: SentPrompt, *, ours: bool) -> PromptState:
    """The prompt's state at its backend. Another backend that does not answer counts as having
    lost it (its worker is gone too): it is made anew on ours. Ours not answering is retried."""
    try:
        return holder.lookup(prompt.prompt_id).state
    except ComfyUIUnavailable:
        if ours:
            raise
        return PromptState.UNKNOWN


def collect(
    client: ComfyUIClient,
    context: JobContext,
    prompt: SentPrompt,
    on_progress: Callable[[PromptProgress], None],
) -> PromptResult:
    """Wait for the prompt's end: stopped in ComfyUI on a user's cancel, left running there when
    vidgen stops or the job was taken from us (its result is collected by the next holder)."""
    holder = prompt_client(client, context, prompt)
    try:
        return holder.wait_for(
            prompt.prompt_id, on_progress, cancel=context.cancel, leave_running=context.leave
        )
    except ComfyUIInterrupted:
        if context.cancel.is_set():
            context.note(
                f"interrupted prompt {prompt.prompt_id} ({prompt.step}) in ComfyUI "
                f"at {holder.base_url}: the job was cancelled"
            )
        raise
