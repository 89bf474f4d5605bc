"""What intake records for an accepted manifest: settings hashes, job settings and the resolved
manifest, built from the ``Manifest`` and the stored copies of its reference files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vidgen.db.manifests import ManifestRecord, PlannedClip
from vidgen.db.models import RunsOn
from vidgen.specs import ClipSpec, ExportRequest, GenerationMode
from watcher.manifest import Manifest
from watcher.resolve import ManifestClip


@dataclass(frozen=True, slots=True)
class StoredReference:
    path: Path  # the copy under storage/{projectName}/refs/
    sha256: str  # of its bytes


def settings_hash(
    spec: ClipSpec, content_sha256: str | None, seed: int, variation: int | None = None
) -> str:
    """sha256 over every setting that changes a clip's video, the reference's bytes included.

    An imported clip is its video's bytes alone; IPAdapter settings count only for
    image-to-video, so changing them leaves text-to-video clips as they are. ``variation``
    tells apart variations whose seeds were drawn (the first has none: a clip that gains
    variations keeps its video as the first).
    """
    if spec.mode is GenerationMode.IMPORTED:
        fields: dict[str, Any] = {"mode": spec.mode.value, "video": content_sha256}
    else:
        fields = {
            "mode": spec.mode.value,
            "prompt": spec.prompt,
            "negativePrompt": spec.negative_prompt,
            "seed": seed,
            "steps": spec.steps,
            "cfg": spec.cfg,
            "frames": spec.frames,
            "frameRate": spec.frame_rate,
            "width": spec.width,
            "height": spec.height,
            "checkpoint": spec.checkpoint,
            "vae": spec.vae,
            "motionModule": spec.motion_module,
        }
        # Only when set, so the clips of manifests from before these settings keep their hash.
        if spec.prompt_schedule:
            fields["prompts"] = [[k.frame, k.prompt] for k in spec.prompt_schedule]
        if spec.motion_loras:
            fields["motionLora"] = [[m.name, m.strength] for m in spec.motion_loras]
        if spec.mode is GenerationMode.IMAGE_TO_VIDEO:
            fields |= {
                "ipAdapter": spec.ip_adapter,
                "clipVision": spec.clip_vision,
                "ipAdapterWeight": spec.ip_adapter_weight,
                "image": content_sha256,
            }
    if variation is not None and variation > 1:
        fields["variation"] = variation
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def plan_clip(clip: ManifestClip, stored: StoredReference | None) -> PlannedClip:
    """The clip with its reference pointing at the stored copy, as the job will read it."""
    spec = clip.spec
    if stored is not None and spec.mode is GenerationMode.IMPORTED:
        spec = replace(spec, video=str(stored.path))
    elif stored is not None:
        spec = replace(spec, reference_image=str(stored.path))
    digest = stored.sha256 if stored is not None else None
    frozen_spec = spec
    variation = clip.variation
    number = variation.number if variation is not None and variation.numbered else None

    def hash_with(seed: int) -> str:
        return settings_hash(frozen_spec, digest, seed, number)

    runs_on = RunsOn.CPU if spec.mode is GenerationMode.IMPORTED else RunsOn.COMFYUI
    return PlannedClip(
        spec=spec, seed=clip.seed, runs_on=runs_on, settings_hash=hash_with, variation=variation
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a manifest came from and goes, and its identity."""

    manifest_id: str
    source_path: Path
    stored_folder: Path
    stored_extension: str
    content_sha256: str
    outbox: Path


def build_record(
    manifest: Manifest,
    placement: Placement,
    stored: Mapping[Path, StoredReference],
) -> ManifestRecord:
    clips = tuple(
        plan_clip(clip, stored.get(clip.source) if clip.source else None) for clip in manifest.clips
    )
    export = ExportRequest(
        export=manifest.export,
        outbox=str(placement.outbox),
        width=manifest.width,
        height=manifest.height,
        frame_rate=manifest.frame_rate,
    )
    resolved = {
        "file": manifest.file_name,
        "project": manifest.display_name,
        "projectName": manifest.project_name,
        "description": manifest.description,
        "resolution": manifest.resolution,
        "frameRate": manifest.frame_rate,
        "sources": [clip.source_text for clip in manifest.clips],
        "export": manifest.export.to_json(),
        **({} if manifest.priority is None else {"priority": manifest.priority.word}),
        "notes": list(manifest.notes),
    }
    return ManifestRecord(
        manifest_id=placement.manifest_id,
        project_name=manifest.project_name,
        display_name=manifest.display_name,
        description=manifest.description,
        resolution=manifest.resolution,
        frame_rate=manifest.frame_rate,
        outbox=str(placement.outbox),
        source_path=str(placement.source_path),
        stored_folder=str(placement.stored_folder),
        stored_extension=placement.stored_extension,
        content_hash=placement.content_sha256,
        clips=clips,
        export=export,
        priority=manifest.priority,
        resolved=resolved,
    )


def resolved_text(resolved: Mapping[str, Any]) -> str:
    """The resolved manifest as stored beside the original: JSON, readable, UTF-8."""
    return json.dumps(resolved, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
