"""The workers `vidgen run` / `vidgen work` start: one per ComfyUI backend, plus CPU workers."""

from __future__ import annotations

from stages.export import ExportStage
from stages.generate import GenerateStage, ImportStage
from stages.worker import Stage, Worker
from vidgen.config import Settings
from vidgen.db.models import JobType, RunsOn
from vidgen.db.session import Database
from workflows.comfyui_client import ComfyUIClient


def make_workers(settings: Settings, database: Database) -> list[Worker]:
    """Never two of our prompts running on one backend: each backend has exactly one worker."""
    workers = []
    for url in settings.comfyui.urls:
        client = ComfyUIClient(url, settings.comfyui)
        stages: dict[JobType, Stage] = {
            JobType.GENERATE: GenerateStage(client),
            JobType.EXPORT: ExportStage(client),
        }
        workers.append(
            Worker(
                settings,
                database,
                RunsOn.COMFYUI,
                stages,
                backend=url,
                backend_probe=client.is_reachable,
                on_stop=client.close,
            )
        )
    cpu_stages: dict[JobType, Stage] = {
        JobType.GENERATE: ImportStage(),
        JobType.EXPORT: ExportStage(None),
    }
    workers.extend(
        Worker(settings, database, RunsOn.CPU, cpu_stages, name=f"cpu{n}")
        for n in range(settings.jobs.cpu_workers)
    )
    return workers
