"""Reading a manifest exactly as intake does, for intake and for ``vidgen validate``.

bytes → limits and UTF-8 → YAML (with lines) → a mapping → every schema error → the checks the
schema cannot express → frozen values with every default applied (``Manifest``), a
``CancelRequest`` or a ``PriorityRequest``. Every problem names its YAML path and line
(``vidgen.errors.Problem``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidgen.config import InboxSettings, Settings
from vidgen.errors import ManifestError, Problem
from vidgen.specs import ExportSpec, InstalledModels, Priority
from watcher.export import resolve_export
from watcher.presets import Applied, apply_preset
from watcher.references import Reference, ReferenceReader
from watcher.resolve import (
    Context,
    ManifestClip,
    clip_entries,
    display_name,
    resolve_clip,
    resolve_size,
    resolved_project,
)
from watcher.schema_messages import schema_problems
from watcher.variations import expand_clip
from watcher.yaml_lines import MAX_BYTES, YamlDocument, parse_yaml

# What the reachable ComfyUI backends offer, or None when none is reachable.
Catalogue = Callable[[], InstalledModels | None]


@dataclass(frozen=True, slots=True)
class Manifest:
    """An accepted manifest: the project and its clips, every default applied."""

    file_name: str
    display_name: str
    project_name: str
    description: str
    width: int
    height: int
    frame_rate: int
    clips: tuple[ManifestClip, ...]  # every variation of a clip included, in the sheet's order
    export: ExportSpec
    priority: Priority | None = None  # None: new jobs are normal, waiting ones keep theirs
    notes: tuple[str, ...] = ()

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def played(self) -> tuple[ManifestClip, ...]:
        """The clips the export plays: every variation but the picked (or first) one left out."""
        return tuple(clip for clip in self.clips if clip.played)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """``cancel: NAME``: stop the jobs of the project named (or of the job with that id)."""

    file_name: str
    target: str
    line: int


@dataclass(frozen=True, slots=True)
class PriorityRequest:
    """``priority: high`` beside only ``project``: move that project's waiting jobs; ``line`` is
    where the project is named."""

    file_name: str
    target: str
    priority: Priority
    line: int


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """What reading one file found: the manifest, or every problem (never both)."""

    path: Path
    manifest: Manifest | CancelRequest | PriorityRequest | None
    problems: tuple[Problem, ...] = ()
    missing: tuple[Problem, ...] = ()  # referenced files that are not (yet) in the inbox
    references: tuple[Reference, ...] = ()  # referenced files found, inside the inbox

    @property
    def ok(self) -> bool:
        return self.manifest is not None

    @property
    def only_missing_files(self) -> bool:
        """Every problem is a referenced file not there yet: worth waiting for."""
        return bool(self.missing) and set(self.problems) <= set(self.missing)

    def format(self, file_name: str | None = None) -> str:
        """The problems in the one format, ``FILE:LINE: PATH: MESSAGE``, one per line."""
        return ManifestError(list(self.problems)).format(file_name or self.path.name)


def check_file(
    path: Path,
    settings: Settings,
    catalogue: Catalogue | None,
    inbox: InboxSettings | None = None,
) -> ValidationResult:
    """``vidgen validate``: a file outside an inbox takes its own folder as its inbox. The files
    it names are copied into a temporary folder and inspected there, as intake does; ``inbox``
    gives its preset."""
    with tempfile.TemporaryDirectory(prefix="vidgen-validate-") as staging:
        reader = ReferenceReader(path.parent, settings.limits, Path(staging))
        return read_manifest(path, settings, catalogue, reader=reader, inbox=inbox)


def read_manifest(
    path: Path,
    settings: Settings,
    catalogue: Catalogue | None,
    *,
    reader: ReferenceReader,
    file_name: str | None = None,
    inbox: InboxSettings | None = None,
) -> ValidationResult:
    """Read and check ``path`` as dropped under ``file_name`` into the inbox ``reader`` reads.

    Raises:
        OSError: the file itself cannot be read (gone, or its share away); callers decide.
    """
    with path.open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    return validate_bytes(
        raw,
        settings,
        catalogue,
        file_name=file_name or path.name,
        path=path,
        reader=reader,
        inbox=inbox,
    )


def validate_bytes(
    raw: bytes,
    settings: Settings,
    catalogue: Catalogue | None,
    *,
    file_name: str,
    path: Path,
    reader: ReferenceReader,
    inbox: InboxSettings | None = None,
) -> ValidationResult:
    """The whole check of a manifest's bytes, its files read by ``reader``, under the preset of
    ``inbox``; ``path`` is only reported back."""
    try:
        document = parse_yaml(raw)
    except ManifestError as exc:
        return ValidationResult(path, None, tuple(exc.problems))
    if not isinstance(document.data, dict):
        return ValidationResult(path, None, (_not_a_mapping(document.data),))
    problems = schema_problems(document)
    if problems:
        return ValidationResult(path, None, tuple(problems))
    if "cancel" in document.data:
        line = document.line_of(("cancel",))
        return ValidationResult(
            path, CancelRequest(file_name, str(document.data["cancel"]).strip(), line)
        )
    if "priority" in document.data and set(document.data) <= {"project", "priority"}:
        return ValidationResult(path, _priority_request(document, file_name))
    preset = Applied()
    if inbox is not None:
        document, preset = apply_preset(document, inbox)
    models = catalogue() if catalogue is not None else None
    ctx = Context(document, settings, reader, models, preset_source=preset.source_of)
    if preset.note is not None:
        ctx.notes.append(preset.note)
    manifest = _resolve(ctx, file_name)
    return ValidationResult(
        path,
        None if ctx.problems else manifest,
        tuple(ctx.problems),
        tuple(ctx.missing),
        tuple(ctx.references),
    )


def _priority_request(document: YamlDocument, file_name: str) -> PriorityRequest:
    display = display_name(document.data, file_name)
    priority = Priority.named(document.data["priority"])
    named = "project" if "project" in document.data else "priority"
    return PriorityRequest(file_name, display, priority, document.line_of((named,)))


def _not_a_mapping(data: Any) -> Problem:
    if data is None:
        message = "the manifest is empty; the smallest manifest is one line: `prompt: …`"
    else:
        message = "expected a mapping of settings such as `prompt: a red fox running through snow`"
    return Problem("", 1, message)


def _resolve(ctx: Context, file_name: str) -> Manifest:
    size = resolve_size(ctx)
    frame_rate = ctx.settings.generation.frame_rate
    expanded: list[ManifestClip] = []
    for index, (path, clip) in enumerate(clip_entries(ctx.data)):
        resolved = resolve_clip(ctx, index, path, clip, size)
        expanded.extend(expand_clip(ctx, path, clip, resolved, len(expanded)))
    clips = tuple(expanded)
    export = resolve_export(ctx, [c for c in clips if c.played], size, frame_rate)
    display, name, description = resolved_project(ctx, file_name)
    priority = ctx.data.get("priority")
    return Manifest(
        file_name=file_name,
        display_name=display,
        project_name=name,
        description=description,
        width=size[0],
        height=size[1],
        frame_rate=frame_rate,
        clips=clips,
        export=export,
        priority=None if priority is None else Priority.named(priority),
        notes=tuple(dict.fromkeys(ctx.notes)),
    )
