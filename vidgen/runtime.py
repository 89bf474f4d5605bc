"""Starting and stopping the parts of vidgen in one process: watcher, workers, status page.

``vidgen run`` starts all three; ``watch``, ``work`` and ``status`` start one each, for set-ups
where several hosts share one database and one network share.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import FrameType
from typing import TYPE_CHECKING

from vidgen.config import Settings
from vidgen.db.session import Database, open_database, upgrade
from vidgen.errors import VidgenError
from workflows.catalogue import ModelCatalogue

if TYPE_CHECKING:
    from stages.worker import Worker
    from vidgen.notifications.notifier import Notifier
    from watcher.observer import Watcher
    from workflows.comfyui_client import ComfyUIClient

log = logging.getLogger(__name__)

_WORKER_STOP_SECONDS = 5.0
_GC_FIRST_DELAY_SECONDS = 300.0  # the first clean-up waits for start-up's own work to settle


class Part(StrEnum):
    WATCH = "watch"
    WORK = "work"
    STATUS = "status"


@dataclass
class Services:
    """The running parts; ``stop`` ends them in the order that loses nothing."""

    settings: Settings
    database: Database
    stop_event: threading.Event = field(default_factory=threading.Event)
    watcher: Watcher | None = None
    workers: list[Worker] = field(default_factory=list)
    status_thread: threading.Thread | None = None
    gc_thread: threading.Thread | None = None
    catalogue: ModelCatalogue | None = None
    notifier: Notifier | None = None
    probe_clients: list[ComfyUIClient] = field(default_factory=list)  # the notifier's
    failure: VidgenError | None = None  # why a part stopped on its own (raised after stopping)

    def stop(self) -> None:
        self.stop_event.set()
        if self.watcher is not None:
            self.watcher.stop()
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            if not worker.join(_WORKER_STOP_SECONDS):
                log.info("worker %s is waiting on ComfyUI; its job is released", worker.worker_id)
            worker.release_held()
        if self.notifier is not None:
            self.notifier.stop()
        for client in self.probe_clients:
            client.close()
        if self.gc_thread is not None:
            self.gc_thread.join(timeout=10)
        if self.status_thread is not None:
            self.status_thread.join(timeout=10)
        self.database.dispose()
        log.info("vidgen stopped")


def open_migrated(settings: Settings) -> Database:
    database = open_database(settings.database_url)
    upgrade(database)
    return database


def start(settings: Settings, parts: set[Part]) -> Services:
    """Start the parts; a setting that forbids one stops start-up before anything runs.

    Raises:
        ConfigError: e.g. the status page bound beyond loopback without a token, or an inbox
            preset no manifest could hold.
    """
    if Part.STATUS in parts:
        from status.security import check_binding

        check_binding(settings)
    if Part.WATCH in parts:
        from watcher.presets import check_presets

        check_presets(settings)
    # Inboxes are not made: a missing one may be a share not mounted yet, and a folder made at
    # its mount point would catch files meant for the share. The watcher reports it missing.
    for folder in (settings.storage, settings.outbox):
        folder.mkdir(parents=True, exist_ok=True)
    services = Services(settings, open_migrated(settings))
    services.catalogue = ModelCatalogue(settings.comfyui)
    # Each part is imported only when it runs: `vidgen work` on a GPU host loads no Flask.
    if Part.WORK in parts:
        from stages.pool import make_workers

        services.workers = make_workers(settings, services.database)
        for worker in services.workers:
            worker.start()
        _start_notifier(services)
    if Part.WATCH in parts:
        from watcher.intake import Intake
        from watcher.observer import Watcher

        intake = Intake(settings, services.database, services.catalogue.installed)
        services.watcher = Watcher(settings, intake)
        services.watcher.start()
    if parts == set(Part) and settings.gc.every_hours > 0:  # `vidgen run`
        services.gc_thread = threading.Thread(
            target=_clean_storage, args=(services,), name="gc", daemon=True
        )
        services.gc_thread.start()
    if Part.STATUS in parts:
        services.status_thread = threading.Thread(
            target=_serve_status, args=(services,), name="status", daemon=True
        )
        services.status_thread.start()
        log.info("status page on http://%s:%d", settings.status.host, settings.status.port)
    return services


def _start_notifier(services: Services) -> None:
    from vidgen.notifications.notifier import Notifier
    from workflows.comfyui_client import ComfyUIClient

    settings = services.settings
    # Clients of its own: the monitor asks each backend whether it answers (attention).
    services.probe_clients = [ComfyUIClient(url, settings.comfyui) for url in settings.comfyui.urls]
    backends = {client.base_url: client.is_reachable for client in services.probe_clients}
    services.notifier = Notifier(settings, services.database, backends)
    services.notifier.start()


def _clean_storage(services: Services) -> None:
    """`vidgen gc` every ``gc.everyHours`` until vidgen stops."""
    from stages.gc import collect_garbage

    wait = _GC_FIRST_DELAY_SECONDS
    while not services.stop_event.wait(wait):
        try:
            collect_garbage(services.settings, services.database)
        except VidgenError as exc:  # the database restarting, say: next time
            log.warning("storage clean-up failed: %s", exc.user_message)
        except OSError as exc:
            log.warning("storage clean-up failed: %s", exc)
        wait = services.settings.gc.every_hours * 3600


def _serve_status(services: Services) -> None:
    from status import serve

    try:
        serve(services.settings, services.database, services.stop_event)
    except VidgenError as exc:  # e.g. the port is taken: said once, and vidgen stops
        services.failure = exc


def run_until_signalled(services: Services) -> None:
    """Block until Ctrl-C or SIGTERM, then stop everything within seconds."""
    received = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        received.set()

    previous: dict[signal.Signals, Callable[..., object] | int | None] = {}
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        previous[signal_number] = signal.signal(signal_number, on_signal)
    try:
        while not received.wait(1.0):
            if services.status_thread is not None and not services.status_thread.is_alive():
                log.error("the status page stopped; stopping vidgen")
                break
            if services.watcher is not None:
                services.watcher.ensure_running()  # a dead intake thread is started again
    finally:
        services.stop()
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)
    if services.failure is not None:
        raise services.failure
