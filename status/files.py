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
from typing import BinaryIO
from urllib.parse import quote

from flask import Blueprint, Response, abort, request, send_file

from status.context import status_context
from vidgen.config import Settings
from vidgen.safe_files import open_folder, open_plain

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

    def open(self, url_path: str) -> BinaryIO | None:
        """The file behind ``/files/<url_path>``, open for reading, or None for anything the page
        must not serve: traversal, absolute or odd names, folders, other files, and anything
        that is not a regular file reached without a symbolic link (checked on the opened
        descriptor, so nothing swapped in after a check is served, and nothing blocks)."""
        parts = url_path.split("/")
        if any(_bad_part(part) for part in parts) or len(parts) < 2:
            return None
        root = self.roots.get(parts[0])
        if root is None or not _allowed(parts[0], tuple(parts[1:])):
            return None
        with open_folder(root, parts[1:-1]) as folder:
            return None if folder is None else open_plain(parts[-1], folder)


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


def content_type(name: str) -> str | None:
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())


@bp.get("/files/<path:url_path>")
def serve_file(url_path: str) -> Response:
    roots: FileRoots = status_context().file_roots
    handle = roots.open(url_path)
    if handle is None:
        abort(404)
    try:
        return _send(handle, PurePosixPath(url_path).name)
    except BaseException:
        handle.close()
        raise


def _send(handle: BinaryIO, name: str) -> Response:
    """The open file as a response with Range, ETag and Last-Modified from its descriptor."""
    info = os.fstat(handle.fileno())
    mimetype = content_type(name)
    response = send_file(
        handle,
        mimetype=mimetype or "application/octet-stream",
        as_attachment=mimetype is None,
        download_name=name,
        conditional=False,
        etag=f"{info.st_mtime_ns:x}-{info.st_size:x}",
        last_modified=info.st_mtime,
        max_age=60,
    )
    response.content_length = info.st_size
    # Made conditional here, with the size, because send_file learns it only from a path.
    response.make_conditional(request, accept_ranges=True, complete_length=info.st_size)
    return response
