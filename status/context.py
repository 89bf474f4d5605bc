"""What the status app keeps for its views, in one typed value: ``status_context()``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

from vidgen.config import Settings
from vidgen.db.session import Database
from vidgen.shown_paths import ShownPaths

if TYPE_CHECKING:  # these modules' views use this one: import them for the types only
    from status.events import ChangeFeed
    from status.files import FileRoots
    from status.health import BackendProbe, FFmpegVersion
    from status.rejected import RejectedLister

EXTENSION = "vidgen"


@dataclass(frozen=True, slots=True)
class StatusContext:
    """The settings, database and helpers ``create_app`` was given or made."""

    settings: Settings
    database: Database
    file_roots: FileRoots
    shown: ShownPaths
    feed: ChangeFeed
    ffmpeg: FFmpegVersion
    backend_probes: Sequence[BackendProbe]
    rejected_lister: RejectedLister


def status_context(app: Flask | None = None) -> StatusContext:
    """The context of ``app``, by default the app serving the current request."""
    return cast(StatusContext, (app or current_app).extensions[EXTENSION])
