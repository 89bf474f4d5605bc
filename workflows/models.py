"""Which model files a ComfyUI backend offers, read from its ``/object_info``.

Each loader node lists its files as the choices of one input (``LOADERS``), so a backend's
``/object_info`` says what is installed there; intake checks a manifest's model names against
it before any GPU work (docs/comfyui.md#nodes-vidgen-builds-with).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidgen.specs import InstalledModels, ModelKind
from workflows.schema import LOADERS, choices_of, input_spec

# VAELoader offers "pixel_space" (no VAE at all), which is no file a user installed.
_NOT_FILES = frozenset({"pixel_space"})


def installed_models_from_object_info(object_info: Mapping[str, Any]) -> InstalledModels:
    """Read every loader's choice list; a node pack that is not installed lists nothing."""
    found: dict[ModelKind, tuple[str, ...]] = {}
    for kind, (class_type, input_name) in LOADERS.items():
        spec = input_spec(object_info, class_type, input_name)
        choices = choices_of(spec) if spec is not None else None
        found[kind] = tuple(
            str(c) for c in choices or () if isinstance(c, str) and c not in _NOT_FILES
        )
    return InstalledModels(found)
