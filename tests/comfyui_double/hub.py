"""WebSocket fan-out with ComfyUI's routing rules.

One socket per clientId; ``sid=None`` means broadcast. Messages go through one queue and one
publisher task, as in the real server, so their order is the order they were produced in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.comfyui_double.state import Controls


@dataclass
class Client:
    socket: web.WebSocketResponse
    request: web.Request
    feature_flags: dict[str, Any]
    dropped: bool = False


class Hub:
    """Sockets by clientId and the ordered publisher."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self.clients: dict[str, Client] = {}
        self._messages: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        self.drop_all()

    def send(self, event: str, data: Any, sid: str | None) -> None:
        """Queue a JSON message for ``sid`` (None: every socket)."""
        self._messages.put_nowait((event, data, sid))

    async def send_now(self, event: str, data: Any, sid: str) -> None:
        """Send directly (connect-time messages that must precede anything queued later)."""
        client = self.clients.get(sid)
        if client is not None and not self.controls.silent_socket:
            await _send(client.socket, {"type": event, "data": data})

    async def _publish_loop(self) -> None:
        while True:
            event, data, sid = await self._messages.get()
            if self.controls.silent_socket:
                continue
            message = {"type": event, "data": data}
            if sid is None:
                for client in list(self.clients.values()):
                    await _send(client.socket, message)
            elif sid in self.clients:
                await _send(self.clients[sid].socket, message)

    async def flush(self) -> None:
        """Wait until every queued message was handed to its socket."""
        while not self._messages.empty():
            await asyncio.sleep(0.001)

    def drop_all(self) -> None:
        """Close every socket abruptly (no close frame), like a dying server or a pulled cable."""
        for client in list(self.clients.values()):
            client.dropped = True
            transport = client.request.transport
            if transport is not None:
                transport.abort()
        self.clients.clear()


async def _send(socket: web.WebSocketResponse, message: dict[str, Any]) -> None:
    # Like send_socket_catch_exception in ComfyUI: a dead socket must not stop the publisher.
    with contextlib.suppress(ConnectionError, RuntimeError):
        await socket.send_str(json.dumps(message))
