"""The JSON shapes of /api/ and of the SSE events: camelCase keys, ISO 8601 UTC times, file
URLs instead of paths (a path on the server is no business of a client)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from status.files import FileRoots
from vidgen.db.queries import (
    ClipView,
    JobDetail,
    JobPage,
    JobSummary,
    ManifestView,
    OutputView,
    ProjectDetail,
    ProjectSummary,
)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_json(job: JobSummary) -> dict[str, Any]:
    return {
        "id": job.id,
        "projectName": job.project_name,
        "displayName": job.display_name,
        "jobType": job.job_type,
        "jobStatus": job.job_status,
        "progressPercent": job.progress_percent,
        "currentStage": job.current_stage,
        "errorMessage": job.error_message,
        "attempts": job.attempts,
        "priority": job.priority,
        "clipIds": list(job.clip_ids),
        "outputFileName": job.output_file_name,
        "createdAt": iso(job.created_at),
        "createdAtUs": int(job.created_at.timestamp() * 1_000_000),
        "updatedAt": iso(job.updated_at),
        "updatedAtUs": int(job.updated_at.timestamp() * 1_000_000),
        "startedAt": iso(job.started_at),
        "completedAt": iso(job.completed_at),
    }


def page_json(page: JobPage) -> dict[str, Any]:
    return {
        "jobs": [job_json(job) for job in page.jobs],
        "page": page.page,
        "perPage": page.per_page,
        "total": page.total,
        "pages": page.pages,
        "statusCounts": page.status_counts,
    }


def job_detail_json(detail: JobDetail, roots: FileRoots) -> dict[str, Any]:
    return {
        **job_json(detail.job),
        "logs": [
            {"level": line.level, "message": line.message, "createdAt": iso(line.created_at)}
            for line in detail.logs
        ],
        "jobSettings": detail.job_settings,
        "dependsOn": detail.depends_on,
        "workerId": detail.worker_id,
        "comfyBackend": detail.comfy_backend,
        "outputUrl": roots.url_path(detail.output_path),
        "prompts": [
            {
                "step": prompt.step,
                "promptId": prompt.prompt_id,
                "backend": prompt.backend,
                "graph": prompt.graph,
            }
            for prompt in detail.prompts
        ],
    }


def project_json(project: ProjectSummary) -> dict[str, Any]:
    return {
        "projectName": project.name,
        "displayName": project.display_name,
        "description": project.description,
        "projectStatus": project.status,
        "resolution": project.resolution,
        "frameRate": project.frame_rate,
        "clipCount": project.clip_count,
        "createdAt": iso(project.created_at),
        "updatedAt": iso(project.updated_at),
    }


def clip_json(clip: ClipView, roots: FileRoots) -> dict[str, Any]:
    return {
        "id": clip.id,
        "clipName": clip.clip_name,
        "orderIndex": clip.order_index,
        "generationMode": clip.mode,
        "prompt": clip.prompt,
        "negativePrompt": clip.negative_prompt,
        # A string: JavaScript numbers lose 64-bit seeds.
        "seedValue": str(clip.seed),
        "stepsCount": clip.steps,
        "cfgScale": clip.cfg,
        "frameCount": clip.frames,
        "width": clip.width,
        "height": clip.height,
        "checkpoint": clip.checkpoint,
        "durationSec": clip.duration_sec,
        "clipStatus": clip.status,
        "errorMessage": clip.error_message,
        "fileUrl": roots.url_path(clip.file_path),
        "thumbnailUrl": roots.url_path(clip.thumbnail_path),
        "referenceImageUrl": roots.url_path(clip.reference_image),
        "jobId": clip.job_id,
        "progressPercent": clip.progress_percent,
        "currentStage": clip.current_stage,
    }


def manifest_json(manifest: ManifestView, roots: FileRoots) -> dict[str, Any]:
    return {
        "id": manifest.id,
        "fileName": manifest.file_name,
        "url": roots.url_path(manifest.stored_path),
        "status": manifest.status,
        "errors": manifest.errors,
        "resolvedManifest": manifest.resolved_manifest,
        "receivedAt": iso(manifest.received_at),
    }


def output_json(output: OutputView, roots: FileRoots) -> dict[str, Any]:
    return {
        "jobId": output.job_id,
        "jobType": output.job_type,
        "fileName": output.file_name,
        "format": output.output_format,
        "url": roots.url_path(output.path),
        "stillUrl": roots.url_path(output.still),
        "completedAt": iso(output.completed_at),
    }


def project_detail_json(detail: ProjectDetail, roots: FileRoots) -> dict[str, Any]:
    return {
        **project_json(detail.project),
        "clips": [clip_json(clip, roots) for clip in detail.clips],
        "removedClips": [clip_json(clip, roots) for clip in detail.removed_clips],
        "manifests": [manifest_json(m, roots) for m in detail.manifests],
        "outputs": [output_json(o, roots) for o in detail.outputs],
        "jobs": [job_json(job) for job in detail.jobs],
    }
