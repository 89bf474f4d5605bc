"""``create_app``: the Flask app of the status page, handed its settings, database and probes.

Errors become a short message (an HTML page, or JSON under /api/ and /health) and never a
traceback or a path: the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Flask, Response, jsonify, render_template, request
from jinja2 import StrictUndefined
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from status import api, events, files, health, pages, security
from status.context import EXTENSION, StatusContext
from status.events import ChangeFeed
from status.files import FileRoots
from status.health import BackendProbe, FFmpegVersion, comfyui_probes
from status.rejected import RejectedLister, inbox_rejected_lister
from vidgen.config import Settings
from vidgen.db.session import Database
from vidgen.errors import DatabaseUnavailable
from vidgen.shown_paths import ShownPaths

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request was not understood.",
    401: "This status page needs its token: open it once as /?token=YOUR_TOKEN, "
    "or send the header Authorization: Bearer YOUR_TOKEN.",
    404: "There is nothing here.",
    405: "The status page only shows things: it answers GET and HEAD, nothing else.",
    500: "Something went wrong while making this page; the details are in vidgen's log.",
    503: "The database is not answering; this page works again when it is back.",
}


def create_app(
    settings: Settings,
    database: Database,
    *,
    backend_probes: Sequence[BackendProbe] | None = None,
    rejected_lister: RejectedLister | None = None,
) -> Flask:
    """The status page for ``settings`` and ``database``.

    ``backend_probes`` check the ComfyUI backends for /health (default: each configured URL
    through the ComfyUI client); ``rejected_lister`` lists the rejected manifests (default: read
    each inbox's ``rejected/`` folder).

    Raises:
        ConfigError: bound beyond loopback without a token.
    """
    security.check_binding(settings)
    app = Flask("status", static_folder="static", template_folder="templates")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.jinja_env.undefined = StrictUndefined
    # "/files//etc/passwd" must stay a request for a bad name (404), not become a redirect.
    app.url_map.merge_slashes = False
    app.extensions[EXTENSION] = StatusContext(
        settings=settings,
        database=database,
        file_roots=FileRoots.from_settings(settings),
        shown=ShownPaths.from_settings(settings),
        feed=ChangeFeed(database),
        ffmpeg=FFmpegVersion(),
        backend_probes=list(
            backend_probes if backend_probes is not None else comfyui_probes(settings.comfyui)
        ),
        rejected_lister=rejected_lister or inbox_rejected_lister(settings),
    )
    security.install(app, settings)
    for blueprint in (pages.bp, api.bp, events.bp, files.bp, health.bp):
        app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailable, _database_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/health"


def _error_response(status: int, message: str) -> Response:
    if _wants_json():
        response = jsonify({"error": {"status": status, "message": message}})
    else:
        response = Response(render_template("error.html", status=status, message=message))
    response.status_code = status
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    # Our own aborts carry a sentence for a person; Werkzeug's defaults are replaced by ours.
    own = error.description if error.description != type(error).description else None
    response = _error_response(status, own or MESSAGES.get(status, error.name))
    if status == 405:
        response.headers["Allow"] = ", ".join(security.ALLOWED_METHODS)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="vidgen status"'
    return response


def _database_error(error: DatabaseUnavailable) -> Response:
    log.warning("status page: %s", error.user_message)
    return _error_response(ServiceUnavailable.code, MESSAGES[503])


def _internal_error(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.error("status page: error serving %s", request.path, exc_info=error)
    return _error_response(InternalServerError.code, MESSAGES[500])
