"""``serve``: the status page under waitress until a stop event is set (``vidgen run`` runs it
beside the watcher and workers, ``vidgen status`` alone)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any

import waitress  # type: ignore[import-untyped]  # waitress ships no type information
from waitress import wasyncore

from status.app import create_app
from status.context import status_context
from status.events import ChangeFeed
from status.health import BackendProbe
from status.rejected import RejectedLister
from status.security import check_binding
from vidgen.config import Settings
from vidgen.db.session import Database
from vidgen.errors import ConfigError

log = logging.getLogger(__name__)

LOOP_SECONDS = 0.2  # how soon a set stop event is noticed
SHUTDOWN_SECONDS = 5.0


def serve(
    settings: Settings,
    database: Database,
    stop_event: threading.Event,
    *,
    backend_probes: Sequence[BackendProbe] | None = None,
    rejected_lister: RejectedLister | None = None,
) -> None:
    """Serve the status page on ``status.host:status.port`` with ``status.threads`` threads;
    returns once ``stop_event`` is set and the streams have ended.

    Raises:
        ConfigError: bound beyond loopback without a token, or the address cannot be used.
    """
    check_binding(settings)
    app = create_app(
        settings, database, backend_probes=backend_probes, rejected_lister=rejected_lister
    )
    socket_map: dict[int, Any] = {}
    server = _listen(app, settings, socket_map)
    for host, port in getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)
    ]:
        log.info("status page on http://%s:%s/", host, port)
    try:
        # The loop runs here, one poll at a time, so a set stop_event ends it without a signal.
        while not stop_event.is_set():
            wasyncore.loop(timeout=LOOP_SECONDS, map=socket_map, count=1)
    finally:
        feed: ChangeFeed = status_context(app).feed
        feed.stop()
        server.task_dispatcher.shutdown(timeout=SHUTDOWN_SECONDS)
        wasyncore.close_all(socket_map, ignore_all=True)
        log.info("status page stopped")


def _listen(app: Any, settings: Settings, socket_map: dict[int, Any]) -> Any:
    status = settings.status
    return waitress.create_server(
        app,
        map=socket_map,
        sockets=_bind(status.host, status.port),
        threads=status.threads,
        # Lets waitress notice a client that left while its SSE stream waits for news
        # (environ["waitress.client_disconnected"]), so its thread is freed at once.
        channel_request_lookahead=1,
        ident="vidgen",
        clear_untrusted_proxy_headers=True,
    )


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host``, bound here rather than by waitress, so
    that a refused address leaves no half-started server behind (threads, open files).

    Raises:
        ConfigError: the address is in use, or not one of this machine's.
    """
    bound: list[socket.socket] = []
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, address in dict.fromkeys(addresses):
            listener = socket.socket(family, kind, proto)
            bound.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
    except OSError as exc:
        for listener in bound:
            listener.close()
        raise ConfigError(
            f"status page: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from exc
    return bound
