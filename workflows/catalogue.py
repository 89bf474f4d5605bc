"""Which models the reachable ComfyUI backends offer, for checks at validation and intake.

A short cache keeps a burst of manifests from asking every backend for its 900 kB
``/object_info`` each time. ``None`` means no backend answered: then intake accepts and the
jobs wait (DESIGN.md), and model names are checked when a backend is back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import fields

from vidgen.config import ComfyUISettings
from vidgen.errors import ComfyUIError
from workflows.comfyui_client import ComfyUIClient
from workflows.models import InstalledModels

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0

# InstalledModels' fields -> the keys intake uses (ModelSettings' field names).
_KEYS = {
    "checkpoints": "checkpoint",
    "vaes": "vae",
    "motion_modules": "motion_module",
    "ip_adapters": "ip_adapter",
    "clip_visions": "clip_vision",
    "upscale_models": "upscale",
    "rife_models": "rife",
}

Catalogue = dict[str, list[str]]


class ModelCatalogue:
    """The union of what every reachable backend offers, cached for ``CACHE_SECONDS``."""

    def __init__(self, settings: ComfyUISettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: Catalogue | None = None
        self._cached_at = float("-inf")

    def installed(self) -> Catalogue | None:
        with self._lock:
            if time.monotonic() - self._cached_at > CACHE_SECONDS:
                self._cached = self._ask_backends()
                self._cached_at = time.monotonic()
            return self._cached

    def _ask_backends(self) -> Catalogue | None:
        merged: Catalogue | None = None
        for url in self._settings.urls:
            try:
                with ComfyUIClient(url, self._settings) as client:
                    models = client.installed_models()
            except ComfyUIError as exc:
                log.info("ComfyUI at %s does not answer (%s); models not checked there", url, exc)
                continue
            merged = _merge(merged or {}, models)
        return merged


def _merge(catalogue: Catalogue, models: InstalledModels) -> Catalogue:
    for field in fields(models):
        key = _KEYS[field.name]
        names = catalogue.setdefault(key, [])
        names.extend(n for n in getattr(models, field.name) if n not in names)
    return catalogue
