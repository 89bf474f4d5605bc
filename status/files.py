"""``GET /files/<path>``: the files vidgen wrote (clips, thumbnails, references, manifests,
outputs), with HTTP Range so videos seek, and nothing else.

URLs name a root and a path inside it: ``/files/storage/<projectName>/<folder>/<file>`` for the
project folders vidgen fills (never the database, logs or work folders) and
``/files/outbox/<file>`` (``outbox-2``, ``outbox-3`` … for the inboxes' own outboxes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from flask import Blueprint, Response, abort, send_file

from status.context import status_context
from vidgen.config import Settings

bp = Blueprint("files", __name__)

# The folders of storage/{projectName}/ the page may show; work/ holds half-made files.
STORAGE_FOLDERS = frozenset({"clips", "thumbnails", "refs", "manifests"})
STORAGE_ROOT = "storage"

# Only these types are sent as themselves; anything else is a download, so a file with HTML or
# SVG inside can never run as a page of this site.
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class FileRoots:
    """The folders ``/files/`` may serve from, by the name used in URLs."""

    roots: dict[str, Path]

    @classmethod
    def from_settings(cls, settings: Settings) -> FileRoots:
        roots = {STORAGE_ROOT: settings.storage}
        for number, outbox in enumerate(dict.fromkeys(settings.all_outboxes), start=1):
            roots["outbox" if number == 1 else f"outbox-{number}"] = outbox
        return cls({name: Path(os.path.realpath(path)) for name, path in roots.items()})

    def url_path(self, stored: str | None) -> str | None:
        """The ``/files/…`` URL of a path vidgen recorded (absolute, or relative to storage),
        or None when the page may not serve it."""
        if not stored:
            return None
        path = Path(stored)
        if not path.is_absolute():
            path = self.roots[STORAGE_ROOT] / path
        for name, root in self.roots.items():
            try:
                relative = PurePosixPath(Path(os.path.realpath(path)).relative_to(root).as_posix())
            except ValueError:
                continue
            if _allowed(name, relative.parts):
                return f"/files/{name}/{quote(str(relative), safe='/')}"
        return None

    def resolve(self, url_path: str) -> Path | None:
        """The file behind ``/files/<url_path>``, or None for anything the page must not serve:
        traversal, absolute or odd names, symlinks leading out, folders, other files."""
        parts = url_path.split("/")
        if any(_bad_part(part) for part in parts) or len(parts) < 2:
            return None
        root = self.roots.get(parts[0])
        if root is None or not _allowed(parts[0], tuple(parts[1:])):
            return None
        real = Path(os.path.realpath(root.joinpath(*parts[1:])))
        try:
            inside = real.relative_to(root).parts
        except ValueError:
            return None  # a symlink that leads out of the root
        # Checked again on the real path: a link inside clips/ must not reach work/ or the db.
        if not _allowed(parts[0], inside) or not real.is_file():
            return None
        return real


def _bad_part(part: str) -> bool:
    return (
        part in ("", ".", "..")
        or part.startswith(".")  # hidden names: partial files being written (naming.py)
        or any(c in part for c in ("\\", "\x00", ":"))
    )


def _allowed(root_name: str, parts: tuple[str, ...]) -> bool:
    if root_name != STORAGE_ROOT:
        return len(parts) >= 1
    return len(parts) >= 3 and parts[1] in STORAGE_FOLDERS


def content_type(path: Path) -> str | None:
    return CONTENT_TYPES.get(path.suffix.lower())


@bp.get("/files/<path:url_path>")
def serve_file(url_path: str) -> Response:
    roots: FileRoots = status_context().file_roots
    path = roots.resolve(url_path)
    if path is None:
        abort(404)
    mimetype = content_type(path)
    response = send_file(
        path,
        mimetype=mimetype or "application/octet-stream",
        as_attachment=mimetype is None,
        conditional=True,
        max_age=60,
    )
    response.headers["Accept-Ranges"] = "bytes"
    return response
