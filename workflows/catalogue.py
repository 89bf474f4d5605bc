"""Which models the reachable ComfyUI backends offer, for checks at validation and intake.

A short cache keeps a burst of manifests from asking every backend for its 900 kB
``/object_info`` each time. ``None`` means no backend answered: then intake accepts and the
jobs wait, and model names are checked when a backend is back.
"""

from __future__ import annotations

import logging
import threading
import time

from vidgen.config import ComfyUISettings
from vidgen.errors import ComfyUIError
from vidgen.specs import InstalledModels
from workflows.comfyui_client import ComfyUIClient

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0


class ModelCatalogue:
    """The union of what every reachable backend offers, cached for ``CACHE_SECONDS``."""

    def __init__(self, settings: ComfyUISettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: InstalledModels | None = None
        self._cached_at = float("-inf")

    def installed(self) -> InstalledModels | None:
        with self._lock:
            if time.monotonic() - self._cached_at > CACHE_SECONDS:
                self._cached = self._ask_backends()
                self._cached_at = time.monotonic()
            return self._cached

    def _ask_backends(self) -> InstalledModels | None:
        merged: InstalledModels | None = None
        for url in self._settings.urls:
            try:
                with ComfyUIClient(url, self._settings) as client:
                    models = client.installed_models()
            except ComfyUIError as exc:
                log.info("ComfyUI at %s does not answer (%s); models not checked there", url, exc)
                continue
            merged = models if merged is None else merged.merged(models)
        return merged
