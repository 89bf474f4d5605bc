"""The double's aiohttp app: ComfyUI's routes (also under ``/api``) and ``/__double__`` controls.

Answers copy the real server's shapes and status codes (docs/comfyui.md, Transport to WebSocket):
JSON via ``json.dumps`` defaults, empty 200s for POST /queue, /interrupt, /free and /history,
404/400 with empty bodies, and a plain-text 500 for a body that is not JSON (aiohttp's own answer to
an unhandled error, which is exactly what the real server sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from tests.comfyui_double.engine import Engine
from tests.comfyui_double.hub import Client
from tests.comfyui_double.schema import MODEL_FOLDERS
from tests.comfyui_double.state import Failure, ReceivedPrompt
from tests.comfyui_double.validation import PromptValidator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
FORCED_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}


class Controller(Protocol):
    """The parts of ComfyUIDouble that HTTP controls need besides the engine."""

    port: int

    async def go_away_for(self, seconds: float) -> None: ...


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json.dumps)


def empty(status: int = 200) -> web.Response:
    return web.Response(status=status)


@web.middleware
async def origin_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Default ComfyUI: a loopback Host with a different Origin gets 403 (origin_check.json)."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host", "")
    if origin and host.rsplit(":", 1)[0] in LOOPBACK:
        origin_host = origin.split("://", 1)[-1].rstrip("/")
        if origin_host != host:
            return empty(403)
    return await handler(request)


class Routes:
    """Request handlers bound to one engine."""

    def __init__(self, engine: Engine, controller: Controller) -> None:
        self.engine = engine
        self.controller = controller

    def comfy_routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/ws", self.websocket),
            ("GET", "/embeddings", self.constant([])),
            ("GET", "/extensions", self.constant([])),
            ("GET", "/models", self.constant(list(MODEL_FOLDERS))),
            ("GET", "/models/{folder}", self.models),
            ("POST", "/upload/image", self.upload),
            ("POST", "/upload/mask", self.upload),
            ("GET", "/view", self.view),
            ("GET", "/view_metadata/{folder}", self.not_found),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.constant(FEATURES)),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/vhs/queryvideo", self.query_video),
        ]

    def constant(self, value: Any) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return json_response(value)

        return handler

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return empty(404)

    # -- WebSocket -------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        hub = self.engine.hub
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            hub.clients.pop(sid, None)  # one socket per clientId: the new one replaces the old
        else:
            sid = uuid.uuid4().hex
        client = Client(socket, request, {})
        hub.clients[sid] = client
        try:
            await hub.send_now("status", {"status": self.engine.queue_info(), "sid": sid}, sid)
            if self.engine.client_id == sid and self.engine.last_node_id is not None:
                await hub.send_now("executing", {"node": self.engine.last_node_id}, sid)
            await self._read_client(socket, sid)
        finally:
            # Real quirk kept on purpose: the finished socket's sid is removed even when a newer
            # socket took it over, so closing an old socket also silences its replacement. A socket
            # the double itself dropped is exempt: its client may already have reconnected.
            if not client.dropped:
                hub.clients.pop(sid, None)
        return socket

    async def _read_client(self, socket: web.WebSocketResponse, sid: str) -> None:
        first = True
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                data = json.loads(message.data)
                if first and data.get("type") == "feature_flags":
                    client = self.engine.hub.clients.get(sid)
                    if client is not None:
                        client.feature_flags = data.get("data", {})
                    await self.engine.hub.send_now("feature_flags", FEATURES, sid)
            first = False

    # -- prompt and queue ------------------------------------------------------------------

    async def post_prompt(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()  # malformed JSON -> aiohttp's plain 500, as the real server
        engine = self.engine
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = -engine.number if body.get("front") else engine.number
            engine.number += 1
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            self._observe(body, None, number, 400)
            return json_response({"error": error, "node_errors": {}}, 400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        validator = PromptValidator(engine.schemas, engine.file_check, str(engine.root))
        verdict = validator.validate(prompt, body.get("partial_execution_targets"))
        extra = body.get("extra_data", {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        if not verdict.ok:
            self._observe(body, prompt_id, number, 400)
            return json_response({"error": verdict.error, "node_errors": verdict.node_errors}, 400)
        engine.enqueue([number, prompt_id, prompt, extra, verdict.outputs])
        self._observe(body, prompt_id, number, 200)
        return json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors}
        )

    def _observe(
        self, body: dict[str, Any], prompt_id: str | None, number: float, status: int
    ) -> None:
        record = ReceivedPrompt(
            prompt_id,
            body.get("client_id"),
            number,
            status == 200,
            status,
            body.get("prompt"),
            time.monotonic(),
        )
        self.engine.observations.received(record)

    async def get_prompt(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.engine.queue_info())

    async def get_queue(self, request: web.Request) -> web.StreamResponse:
        running = [self.engine.queue.running] if self.engine.queue.running is not None else []
        return json_response(
            {"queue_running": running, "queue_pending": self.engine.queue.pending()}
        )

    async def post_queue(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("clear"):
            self.engine.queue.clear()
            self.engine.queue_updated()
        for prompt_id in body.get("delete", []):
            if self.engine.queue.delete(prompt_id):
                self.engine.queue_updated()
        return empty()

    async def post_interrupt(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        self.engine.interrupt(body.get("prompt_id") if isinstance(body, dict) else None)
        return empty()

    async def post_free(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("free_memory"):
            self.engine.cache.clear()  # real: resets the executor's caches after the current prompt
        return empty()

    # -- history ---------------------------------------------------------------------------

    async def get_history(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return json_response(self.engine.history.get(max_items, offset))

    async def get_history_one(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.engine.history.one(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("clear"):
            self.engine.history.items.clear()
        for prompt_id in body.get("delete", []):
            self.engine.history.items.pop(prompt_id, None)
        return empty()

    # -- catalogue -------------------------------------------------------------------------

    async def object_info(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.engine.schemas.all_node_info())

    async def object_info_one(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["node_class"]
        schemas = self.engine.schemas
        return json_response({name: schemas.node_info(name)} if schemas.has(name) else {})

    async def models(self, request: web.Request) -> web.StreamResponse:
        folder = request.match_info["folder"]
        if folder not in self.engine.schemas.models:
            return empty(404)
        return json_response(self.engine.schemas.models[folder])

    async def system_stats(self, request: web.Request) -> web.StreamResponse:
        controls = self.engine.controls
        ram_total, ram_free = 25276502016, 24077099008
        system = {
            "os": "posix", "ram_total": ram_total, "ram_free": ram_free,
            "comfyui_version": controls.comfyui_version, "required_frontend_version": "1.27.10",
            "installed_templates_version": "0.1.95", "required_templates_version": "0.1.95",
            "python_version": sys.version, "pytorch_version": "2.14.1+cu130",
            "embedded_python": False,
            "argv": ["main.py", "--listen", "127.0.0.1", "--port", str(self.controller.port)],
        }  # fmt: skip
        device = {
            "name": "cuda:0 NVIDIA GeForce RTX 3080 Ti : cudaMallocAsync", "type": "cuda",
            "index": 0, "vram_total": controls.vram_total, "vram_free": controls.vram_free,
            "torch_vram_total": controls.vram_total, "torch_vram_free": controls.vram_free,
        }  # fmt: skip
        return json_response({"system": system, "devices": [device]})

    # -- files -----------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return empty(400)
        kind = str(post.get("type") or "input")
        if kind not in ("input", "temp", "output"):
            kind = "input"
        subfolder = str(post.get("subfolder", ""))
        base = self.engine.directory(kind).resolve()
        folder = (base / subfolder).resolve()
        if not folder.is_relative_to(base) or not (
            folder / image.filename
        ).resolve().is_relative_to(base):
            return empty(400)
        data = image.file.read()
        name = _store_upload(
            folder, image.filename, data, str(post.get("overwrite", "")) in ("true", "1")
        )
        return json_response({"name": name, "subfolder": subfolder, "type": kind})

    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return empty(404)
        name, kind = query["filename"], query.get("type", "output")
        for suffix, annotated in (("[input]", "input"), ("[output]", "output"), ("[temp]", "temp")):
            if name.endswith(" " + suffix):
                name, kind = name[: -len(suffix) - 1], annotated
        if not name or name.startswith("/") or ".." in name:
            return empty(400)
        if kind not in ("input", "output", "temp"):
            return empty(400)
        base = self.engine.directory(kind).resolve()
        folder = (base / query.get("subfolder", "")).resolve()
        if not folder.is_relative_to(base):
            return empty(403)
        path = folder / Path(name).name
        if not path.is_file():
            return empty(404)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type in FORCED_DOWNLOAD:
            content_type = "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{path.name}"', "Content-Type": content_type}
        return web.FileResponse(path, headers=headers)

    async def query_video(self, request: web.Request) -> web.StreamResponse:
        from tests.comfyui_double import media  # local: only this route probes

        query = request.rel_url.query
        name = query.get("filename", "")
        base = self.engine.directory(query.get("type", "input")).resolve()
        path = (base / query.get("subfolder", "") / name).resolve()
        if not name or not path.is_relative_to(base) or not path.is_file():
            return empty(404)
        probe = await media.probe_video(path)
        source = {
            "fps": probe.fps,
            "duration": probe.duration,
            "size": [probe.width, probe.height],
            "alpha": False,
            "frames": probe.frames,
        }
        loaded = {"duration": probe.duration, "fps": probe.fps, "frames": probe.frames}
        return json_response({"source": source, "loaded": loaded})


def _store_upload(folder: Path, filename: str, data: bytes, overwrite: bool) -> str:
    """ComfyUI's name-clash rules: same bytes -> same name; different -> 'name (1).ext'."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    if not overwrite:
        stem, suffix = Path(filename).stem, Path(filename).suffix
        counter = 1
        while path.exists():
            if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
                return path.name
            path = folder / f"{stem} ({counter}){suffix}"
            counter += 1
    path.write_bytes(data)
    return path.name


def build_app(
    engine: Engine, controller: Controller, control_routes: list[tuple[str, str, Handler]]
) -> web.Application:
    app = web.Application(middlewares=[origin_check], client_max_size=FEATURES["max_upload_size"])
    routes = Routes(engine, controller)
    for method, path, handler in routes.comfy_routes():
        _add(app, method, "/api" + path, handler)
        _add(app, method, path, handler)
    for method, path, handler in control_routes:
        _add(app, method, path, handler)
    return app


def _add(app: web.Application, method: str, path: str, handler: Handler) -> None:
    if method == "GET":
        app.router.add_get(path, handler)  # aiohttp's GET routes answer HEAD too, as the real ones
    else:
        app.router.add_route(method, path, handler)


def control_routes(engine: Engine, controller: Controller) -> list[tuple[str, str, Handler]]:
    """HTTP twins of the Python controls, for a double running as its own process."""
    controls = ControlRoutes(engine, controller)
    return [
        ("POST", "/__double__/controls", controls.settings),
        ("POST", "/__double__/fail_at", controls.fail_at),
        ("POST", "/__double__/go_away", controls.go_away),
        ("POST", "/__double__/models", controls.models),
        ("GET", "/__double__/observations", controls.observations),
        ("POST", "/__double__/{action}", controls.simple),
    ]


class ControlRoutes:
    """Handlers of ``/__double__/``; each answers with the control state after the change."""

    SETTINGS = ("step_seconds", "history_delay_seconds", "silent_socket", "vram_total", "vram_free")

    def __init__(self, engine: Engine, controller: Controller) -> None:
        self.engine = engine
        self.controller = controller

    async def settings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        for key in self.SETTINGS:
            if key in body:
                setattr(self.engine.controls, key, body[key])
        return json_response(_control_state(self.engine))

    async def fail_at(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        failure = Failure(
            str(body["target"]),
            str(body.get("message", "Simulated failure")),
            str(body.get("exception_type", "RuntimeError")),
            body.get("times"),
        )
        self.engine.controls.failures.append(failure)
        return json_response(_control_state(self.engine))

    async def simple(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        actions: dict[str, Callable[[], Any]] = {
            "clear_failures": engine.controls.failures.clear,
            "stall": lambda: engine.stall(request.query.get("at")),
            "release": engine.release,
            "drop_sockets": engine.hub.drop_all,
        }
        action = request.match_info["action"]
        if action == "restart":
            await engine.restart()
        elif action in actions:
            actions[action]()
        else:
            return empty(404)
        return json_response(_control_state(engine))

    async def go_away(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seconds = float(body.get("seconds", 1.0))
        # Over HTTP the double cannot be told to come back, so the absence has a length.
        self._away = asyncio.get_running_loop().create_task(self.controller.go_away_for(seconds))
        return json_response({"seconds": seconds})

    async def models(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.engine.schemas.set_models(str(body["folder"]), [str(n) for n in body["names"]])
        return json_response(self.engine.schemas.models)

    async def observations(self, request: web.Request) -> web.StreamResponse:
        return json_response({**self.engine.observations.snapshot(), **_control_state(self.engine)})


def _control_state(engine: Engine) -> dict[str, Any]:
    controls = engine.controls
    return {
        "step_seconds": controls.step_seconds,
        "history_delay_seconds": controls.history_delay_seconds,
        "silent_socket": controls.silent_socket,
        "vram_total": controls.vram_total,
        "vram_free": controls.vram_free,
        "failures": [vars(f) for f in controls.failures],
        "stalled": engine.stalled,
        "stalling_now": engine.stalling_now,
    }
