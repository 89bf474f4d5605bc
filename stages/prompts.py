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
from vidgen.errors import ComfyUIInterrupted, JobCancelled
from workflows import ComfyUIClient, Graph, PromptProgress, PromptResult, PromptState


def ensure_prompt(
    client: ComfyUIClient, context: JobContext, step: str, build: Callable[[], Graph]
) -> SentPrompt:
    """The prompt of ``step`` in ComfyUI: sent by this attempt, sent by an earlier one and still
    known to the backend (queued, running or in its history), or else built and sent now."""
    if step in context.sent:
        return context.sent[step]
    recorded = context.job.last_prompt(step)
    if recorded is not None and recorded.backend == client.base_url:
        state = client.lookup(recorded.prompt_id).state
        if state is not PromptState.UNKNOWN:
            context.note(f"found prompt {recorded.prompt_id} in ComfyUI ({state.value})")
            context.sent[step] = recorded
            return recorded
        context.note(f"ComfyUI no longer knows prompt {recorded.prompt_id}; sending it again")
    prompt = SentPrompt(step, str(uuid.uuid4()), client.base_url, build())
    # Recorded before it is sent: if we die in between, the next attempt asks ComfyUI.
    if not jobs.record_prompt(context.database, context.job.id, context.job.worker_id, prompt):
        context.let_go()
        raise JobCancelled("the job was taken over by another worker")
    client.queue_prompt(prompt.graph, prompt.prompt_id)
    context.note(f"queued prompt {prompt.prompt_id} ({step}) at {client.base_url}")
    context.sent[step] = prompt
    return prompt


def collect(
    client: ComfyUIClient,
    context: JobContext,
    prompt: SentPrompt,
    on_progress: Callable[[PromptProgress], None],
) -> PromptResult:
    """Wait for the prompt's end: stopped in ComfyUI on a user's cancel, left running there when
    vidgen stops or the job was taken from us (its result is collected by the next holder)."""
    try:
        return client.wait_for(
            prompt.prompt_id, on_progress, cancel=context.cancel, leave_running=context.leave
        )
    except ComfyUIInterrupted:
        if context.cancel.is_set():
            context.note(
                f"interrupted prompt {prompt.prompt_id} ({prompt.step}) in ComfyUI "
                f"at {client.base_url}: the job was cancelled"
            )
        raise
