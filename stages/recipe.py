"""Every output carries its recipe: the manifest that makes it again (seeds drawn, full model
names, the vidgen version) in the video's own metadata, and a sidecar ``NAME.json`` beside it
with the per-clip seeds, timings and the hashes of the ComfyUI graphs sent.

MP4 gets the recipe as a tag of its own (``vidgen_recipe``, written with
``-movflags use_metadata_tags``), WebM as a Matroska tag, both passed to ffmpeg in an
ffmetadata file (never on a command line, so no prompt text can reach ffmpeg's options). A GIF
gets a comment extension before its trailer, written here since ffmpeg's GIF muxer writes none,
unless the recipe is longer than ``GIF_COMMENT_LIMIT`` (the sidecar says so). Both files are
published from the work folder, the sidecar first: a video in the outbox has its sidecar.
``read_recipe`` reads a recipe back, from the video alone or from its sidecar.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from stages.encode import copy_args
from stages.worker import JobContext
from vidgen.db.recipes import ClipFacts, ExportFacts, JobTimes, export_facts
from vidgen.db.types import utcnow
from vidgen.errors import FFmpegError, StorageError
from vidgen.ffmpeg import file_arg, format_tags, probe, run
from vidgen.naming import publish
from vidgen.specs import clip_spec_as_manifest, export_spec_as_manifest

TAG = "vidgen_recipe"
GIF_COMMENT_LIMIT = 64 * 1024  # bytes of recipe a GIF's comment carries at most
_GIF_TRAILER = b";"
_GIF_COMMENT = b"\x21\xfe"  # extension introducer, comment label


def recipe_path(video: Path) -> Path:
    """The sidecar of ``video``: the same name ending in ``.json``."""
    return video.with_suffix(".json")


def vidgen_version() -> str:
    return metadata.version("vidgen")


@dataclass(frozen=True, slots=True)
class Recipe:
    """What a video carries: the manifest that makes it again, and who wrote it."""

    manifest: dict[str, Any]
    version: str

    def to_json(self) -> dict[str, Any]:
        return {"vidgen": self.version, "manifest": self.manifest}


def manifest_of(facts: ExportFacts) -> dict[str, Any]:
    """The manifest that makes this export again: every clip with its seed fixed and its models
    named in full, references by the paths the manifest wrote (placed beside it, as then)."""
    manifest: dict[str, Any] = {"project": facts.display_name}
    if facts.description:
        manifest["description"] = facts.description
    manifest["resolution"] = f"{facts.request.width}x{facts.request.height}"
    clips = []
    for clip in facts.clips:
        entry = clip_spec_as_manifest(replace(clip.spec, regenerate=False))
        for key in ("image", "video"):
            if key in entry:
                entry[key] = facts.sources.get(entry[key], entry[key])
        clips.append(entry)
    manifest["clips"] = clips
    export = export_spec_as_manifest(facts.request.export)
    if export is not None:
        manifest["export"] = export
    return manifest


def publish_with_recipe(context: JobContext, video: Path, target: Path) -> None:
    """Embed the recipe in ``video``, write the sidecar, publish both (the sidecar first)."""
    facts = export_facts(context.database, context.job.id)
    recipe = Recipe(manifest_of(facts), vidgen_version())
    embedded, note = _embed(video, recipe, context.work_dir)
    sidecar = context.work_dir / "recipe.json"
    text = json.dumps(_sidecar(facts, recipe, target, note), indent=2, ensure_ascii=False)
    sidecar.write_text(text + "\n", encoding="utf-8")
    publish(sidecar, recipe_path(target))
    publish(embedded, target)


def _sidecar(facts: ExportFacts, recipe: Recipe, target: Path, note: str) -> dict[str, Any]:
    return {
        **recipe.to_json(),
        "video": target.name,
        "projectName": facts.project_name,
        "jobId": facts.job_id,
        "frameRate": facts.request.frame_rate,
        "embedded": note,
        "clips": [_clip_entry(clip) for clip in facts.clips],
        "export": _times(facts.export, utcnow()),
    }


def _clip_entry(clip: ClipFacts) -> dict[str, Any]:
    entry = {"name": clip.spec.clip_name, "mode": clip.spec.mode.value, "seed": clip.spec.seed}
    if clip.made_by is not None:
        entry |= _times(clip.made_by, clip.made_by.completed_at)
    return entry


def _times(times: JobTimes, ended: datetime | None) -> dict[str, Any]:
    started = times.started_at
    return {
        "startedAt": started.isoformat() if started else None,
        "completedAt": ended.isoformat() if ended else None,
        "seconds": round((ended - started).total_seconds(), 3) if started and ended else None,
        "attempts": times.attempts,
        "graphs": [{"step": p.step, "sha256": graph_sha256(p.graph)} for p in times.prompts],
    }


def graph_sha256(graph: dict[str, Any]) -> str:
    """The hash of a graph as JSON with sorted keys: the same graph, the same hash."""
    text = json.dumps(graph, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _embed(video: Path, recipe: Recipe, work_dir: Path) -> tuple[Path, str]:
    """The video with the recipe in its metadata (a new file in ``work_dir``), and a note for the
    sidecar saying where it is."""
    extension = video.suffix.lstrip(".").lower()
    if extension == "gif":
        text = json.dumps(recipe.to_json(), ensure_ascii=True, separators=(",", ":"))
        if len(text) > GIF_COMMENT_LIMIT:
            return video, (
                f"not in the GIF: the recipe ({len(text)} bytes) is larger than "
                f"{GIF_COMMENT_LIMIT} bytes; this file is the recipe"
            )
        return _gif_with_comment(video, text.encode("ascii"), work_dir), "GIF comment extension"
    text = json.dumps(recipe.to_json(), ensure_ascii=False, separators=(",", ":"))
    listing = work_dir / "recipe.ffmetadata"
    listing.write_text(
        f";FFMETADATA1\n{TAG}={_escaped(text)}\ncomment={_escaped(_COMMENT)}\n", encoding="utf-8"
    )
    output = work_dir / f"recipe.{extension}"
    options = ["-c", "copy"]
    if extension == "mp4":
        # The later -movflags wins over copy_args' own: moov first, and free-form tags.
        options = [*copy_args(probe(video).codec), "-movflags", "+faststart+use_metadata_tags"]
    inputs = ["-i", file_arg(video), "-i", file_arg(listing), "-map", "0", "-map_metadata", "1"]
    run([*inputs, *options, file_arg(output)], expected_duration_sec=0.0, output=output)
    listing.unlink(missing_ok=True)
    where = "MP4 tag" if extension == "mp4" else "Matroska tag"
    return output, f"{where} {TAG}"


_COMMENT = "made by vidgen; `vidgen manifest FILE` prints the manifest that makes it again"


def _escaped(text: str) -> str:
    """A value as an ffmetadata file spells it: ``=``, ``;``, ``#``, ``\\`` and newlines
    escaped with a backslash."""
    for char in ("\\", "=", ";", "#", "\n"):
        text = text.replace(char, "\\" + char)
    return text


def _gif_with_comment(video: Path, text: bytes, work_dir: Path) -> Path:
    data = video.read_bytes()
    if not data.endswith(_GIF_TRAILER):
        raise StorageError(f"{video.name} does not end like a GIF; its recipe cannot be added")
    # Data sub-blocks of at most 255 bytes, each led by its length; an empty one ends them.
    blocks = b"".join(bytes([len(part)]) + part for part in _chunks(text, 255))
    output = work_dir / "recipe.gif"
    output.write_bytes(data[:-1] + _GIF_COMMENT + blocks + b"\x00" + _GIF_TRAILER)
    return output


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_recipe(video: Path) -> Recipe:
    """The recipe a video carries: from its own metadata, else from its sidecar.

    Raises:
        StorageError: neither has one (not made by vidgen, or its metadata stripped).
        FFmpegError: the file is no video ffprobe can read, and it has no sidecar.
    """
    found: dict[str, Any] | None = None
    try:
        found = _from_tags(format_tags(video))
    except FFmpegError:
        if not recipe_path(video).is_file():
            raise
    sidecar = recipe_path(video)
    if found is None and sidecar.is_file():
        found = _recipe_json(sidecar.read_text(encoding="utf-8"))
    if found is None:
        raise StorageError(
            f"{video.name} carries no vidgen recipe (not made by vidgen, or its metadata was "
            f"stripped), and no {sidecar.name} is beside it"
        )
    return Recipe(dict(found["manifest"]), str(found.get("vidgen", "")))


def _from_tags(tags: dict[str, str]) -> dict[str, Any] | None:
    for key in (TAG, "comment"):  # MP4 and WebM; a GIF's comment
        if key in tags and (found := _recipe_json(tags[key])) is not None:
            return found
    return None


def _recipe_json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("manifest"), dict):
        return value
    return None


def manifest_yaml(recipe: Recipe, video_name: str) -> str:
    """``vidgen manifest``'s output: the manifest as YAML, ready to drop into an inbox."""
    header = (
        f"# The manifest of {video_name}, made by vidgen {recipe.version or '(unknown)'}.\n"
        "# Drop it into an inbox, with the images and videos it names beside it, to make it\n"
        "# again.\n"
    )
    body = yaml.safe_dump(recipe.manifest, sort_keys=False, allow_unicode=True, width=100)
    return header + body
