"""Inbox presets: an inbox in config.yaml may carry ``defaults`` and ``export``, in the manifest's
own words, which every manifest dropped there gets under what it sets itself, so that a one-line
manifest dropped into ``inbox/gif/`` becomes a GIF. They are checked once, at start, with the
manifest schema's own definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidgen.config import InboxSettings, Settings
from vidgen.errors import ConfigError
from watcher.schema_messages import schema_problems
from watcher.yaml_lines import PathKey, YamlDocument

_SECTIONS = ("defaults", "export")


def has_preset(inbox: InboxSettings) -> bool:
    return bool(inbox.defaults or inbox.export)


def check_presets(settings: Settings) -> None:
    """Raises:
    ConfigError: a preset that no manifest could hold, every problem named by its key."""
    problems = []
    for index, inbox in enumerate(settings.inboxes):
        sections = {k: dict(v) for k in _SECTIONS if (v := getattr(inbox, k)) is not None}
        if not sections:
            continue
        # The sections checked as they would stand in a manifest of one clip.
        document = YamlDocument({"prompt": "preset", **sections})
        problems += [f"inboxes[{index}].{p.path}: {p.message}" for p in schema_problems(document)]
    if problems:
        raise ConfigError("inbox presets: " + "; ".join(problems))


def inbox_for(settings: Settings, manifest: Path, name: str | None = None) -> InboxSettings | None:
    """The inbox named ``name`` (its folder's name, or its path), else the one ``manifest``
    lies in; None when there is none.

    Raises:
        ConfigError: ``name`` names no inbox.
    """
    if name is not None:
        for inbox in settings.inboxes:
            if name in (inbox.name, str(inbox.path)):
                return inbox
        known = ", ".join(inbox.name for inbox in settings.inboxes)
        raise ConfigError(
            f"--inbox {name}: no inbox of that name in config.yaml (inboxes: {known})"
        )
    folder = manifest.resolve().parent
    return next((i for i in settings.inboxes if i.path.resolve() == folder), None)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a preset gave a manifest: the paths of its settings, and a note saying so."""

    paths: frozenset[PathKey] = frozenset()
    source: str = ""  # "preset of inbox gif"
    note: str | None = None

    def source_of(self, path: PathKey) -> str | None:
        """Where a problem at ``path`` must be fixed, when that is not the manifest."""
        return self.source if any(path[: len(p)] == p for p in self.paths) else None


def apply_preset(document: YamlDocument, inbox: InboxSettings) -> tuple[YamlDocument, Applied]:
    """The manifest with the inbox's preset under its own settings, and what the preset gave.
    Lines stay the manifest's."""
    data: dict[str, Any] = dict(document.data)
    given: list[str] = []
    paths: set[PathKey] = set()
    for key in _SECTIONS:
        preset: Mapping[str, Any] = getattr(inbox, key) or {}
        own: Mapping[str, Any] = data.get(key) or {}
        taken = [k for k in preset if k not in own]
        if taken:
            data[key] = {**preset, **own}
            given.append(f"{key} " + ", ".join(taken))
            paths.update((key, name) for name in taken)
    if not given:
        return document, Applied()
    source = f"preset of inbox {inbox.name}"
    merged = YamlDocument(data, document.key_lines, document.value_lines)
    return merged, Applied(frozenset(paths), source, f"{source}: " + "; ".join(given))
