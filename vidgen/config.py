"""Settings: config.yaml (or --config / VIDGEN_CONFIG), then environment overrides, validated once.

The only module that reads ``os.environ``. Everything else is handed a frozen ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from vidgen.errors import ConfigError
from vidgen.specs import RESOLUTION_PATTERN, parse_resolution

DEFAULT_CONFIG_NAME = "config.yaml"

_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_SECONDS = {"type": "number", "minimum": 0}
_NAME = {"type": "string", "minLength": 1}

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "database": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"url": {"type": ["string", "null"]}},
        },
        "storage": _NAME,
        "outbox": _NAME,
        "inboxes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path"],
                "properties": {
                    "path": _NAME,
                    "polling": {"type": "boolean"},
                    "stableSeconds": _SECONDS,
                    "outbox": {"type": ["string", "null"], "minLength": 1},
                },
            },
        },
        "intake": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "rescanSeconds": _NUMBER,
                "missingFilesGraceSeconds": _SECONDS,
                "pollIntervalSeconds": _NUMBER,
                "workers": {"type": "integer", "minimum": 1, "maximum": 16},
            },
        },
        "comfyui": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "urls": {"type": "array", "items": _NAME},
                "requestTimeoutSeconds": _NUMBER,
                "connectTimeoutSeconds": _NUMBER,
                "quietSocketSeconds": _NUMBER,
                "historyRetrySeconds": _SECONDS,
                "waitForBackendSeconds": _NUMBER,
                "upscaleChunkFrames": {"type": "integer", "minimum": 1, "maximum": 1024},
                "promptTimeoutSeconds": _NUMBER,
            },
        },
        "jobs": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "leaseSeconds": _NUMBER,
                "leaseRenewSeconds": _NUMBER,
                "pollSeconds": _NUMBER,
                "maxAttempts": {"type": "integer", "minimum": 1},
                "retryBackoffSeconds": _SECONDS,
                "retryBackoffMaxSeconds": _SECONDS,
                "cpuWorkers": {"type": "integer", "minimum": 0, "maximum": 16},
            },
        },
        "models": {
            "type": "object",
            "additionalProperties": False,
            "properties": dict.fromkeys(
                ("checkpoint", "vae", "motionModule", "ipAdapter", "clipVision", "upscale", "rife"),
                _NAME,
            ),
        },
        "generation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "frames": {"type": "integer", "minimum": 8, "maximum": 128},
                "frameRate": {"type": "integer", "minimum": 1, "maximum": 60},
                "steps": {"type": "integer", "minimum": 1, "maximum": 150},
                "cfg": {"type": "number", "minimum": 0, "maximum": 30},
                "resolution": {"type": "string", "pattern": RESOLUTION_PATTERN},
                "negativePrompt": {"type": "string"},
                "ipAdapterWeight": {"type": "number", "minimum": 0, "maximum": 2},
            },
        },
        "status": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": _NAME,
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "token": {"type": ["string", "null"]},
                "threads": {"type": "integer", "minimum": 2, "maximum": 256},
                "sseMaxSeconds": _NUMBER,
            },
        },
        "logging": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "level": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
                "json": {"type": "boolean"},
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class InboxSettings:
    path: Path
    polling: bool = False
    stable_seconds: float = 2.0
    outbox: Path | None = None


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    rescan_seconds: float = 30.0
    missing_files_grace_seconds: float = 60.0
    poll_interval_seconds: float = 1.0
    workers: int = 2


@dataclass(frozen=True, slots=True)
class ComfyUISettings:
    urls: tuple[str, ...] = ("http://127.0.0.1:8188",)
    request_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    quiet_socket_seconds: float = 10.0
    history_retry_seconds: float = 5.0
    wait_for_backend_seconds: float = 5.0
    upscale_chunk_frames: int = 16
    prompt_timeout_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class JobSettings:
    lease_seconds: float = 60.0
    lease_renew_seconds: float = 15.0
    poll_seconds: float = 0.5
    max_attempts: int = 5
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 60.0
    cpu_workers: int = 1


@dataclass(frozen=True, slots=True)
class ModelSettings:
    checkpoint: str = "realisticVisionV51_v51VAE.safetensors"
    vae: str = "vae-ft-mse-840000-ema-pruned.safetensors"
    motion_module: str = "mm_sd_v15_v2.ckpt"
    ip_adapter: str = "ip-adapter-plus_sd15.safetensors"
    clip_vision: str = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    upscale: str = "RealESRGAN_x4plus.pth"
    rife: str = "rife47.pth"


@dataclass(frozen=True, slots=True)
class GenerationDefaults:
    frames: int = 16
    frame_rate: int = 8
    steps: int = 20
    cfg: float = 7.5
    width: int = 512
    height: int = 512
    negative_prompt: str = "blurry, low quality, watermark"
    ip_adapter_weight: float = 0.8


@dataclass(frozen=True, slots=True)
class StatusSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    threads: int = 16
    sse_max_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    storage: Path
    outbox: Path
    inboxes: tuple[InboxSettings, ...]
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    comfyui: ComfyUISettings = field(default_factory=ComfyUISettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)
    status: StatusSettings = field(default_factory=StatusSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @property
    def logs_dir(self) -> Path:
        return self.storage / "logs"

    def outbox_for(self, inbox_path: Path | None) -> Path:
        """The outbox of the inbox a manifest came from, or the global one."""
        for inbox in self.inboxes:
            if inbox_path is not None and inbox.path == inbox_path and inbox.outbox is not None:
                return inbox.outbox
        return self.outbox

    @property
    def all_outboxes(self) -> tuple[Path, ...]:
        extra = tuple(i.outbox for i in self.inboxes if i.outbox is not None)
        return (self.outbox, *extra)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the config file (``path``, else VIDGEN_CONFIG, else ./config.yaml if present).

    ``overrides`` is a mapping in config.yaml's shape merged over the file (tests use it).

    Raises:
        ConfigError: naming the wrong setting and what is expected.
    """
    env = dict(os.environ if environ is None else environ)
    config_path = _find_config(path, env)
    raw = _read_yaml(config_path) if config_path else {}
    if overrides:
        raw = _merge(raw, dict(overrides))
    raw = _apply_environment(raw, env)
    _validate(raw, config_path)
    base = config_path.parent if config_path else Path.cwd()
    return _build(raw, base.resolve())


def _find_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    chosen = path or env.get("VIDGEN_CONFIG")
    if chosen:
        config_path = Path(chosen)
        if not config_path.is_file():
            raise ConfigError(f"config file {config_path}: not found (expected a YAML file)")
        return config_path
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _read_yaml(config_path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {config_path}: cannot be read as YAML ({exc})") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {config_path}: expected a mapping of settings")
    return loaded


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _port(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"VIDGEN_STATUS_PORT: expected a port number 0..65535, got {value!r}"
        ) from None


def _inboxes(raw: dict[str, Any], value: str) -> list[dict[str, Any]]:
    """VIDGEN_INBOX replaces the folders; the first inbox's other settings carry over."""
    template = (raw.get("inboxes") or [{}])[0]
    template = {k: v for k, v in template.items() if k not in ("path", "outbox")}
    return [{**template, "path": p} for p in value.split(os.pathsep) if p]


# environment variable -> (config section or None for the top level, key, conversion)
_ENVIRONMENT: dict[str, tuple[str | None, str, Any]] = {
    "VIDGEN_DATABASE_URL": ("database", "url", str),
    "VIDGEN_COMFYUI_URLS": (
        "comfyui",
        "urls",
        lambda v: [u.strip() for u in v.split(",") if u.strip()],
    ),
    "VIDGEN_OUTBOX": (None, "outbox", str),
    "VIDGEN_STORAGE": (None, "storage", str),
    "VIDGEN_STATUS_HOST": ("status", "host", str),
    "VIDGEN_STATUS_PORT": ("status", "port", _port),
    "VIDGEN_STATUS_TOKEN": ("status", "token", str),
}


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The one table of environment overrides (``_ENVIRONMENT``, plus VIDGEN_INBOX)."""
    raw = dict(raw)
    for variable, (section, key, convert) in _ENVIRONMENT.items():
        if not (value := env.get(variable)):
            continue
        if section is None:
            raw[key] = convert(value)
        else:
            current = raw.get(section)
            raw[section] = {**(current if isinstance(current, dict) else {}), key: convert(value)}
    if value := env.get("VIDGEN_INBOX"):
        raw["inboxes"] = _inboxes(raw, value)
    return raw


def _validate(raw: dict[str, Any], config_path: Path | None) -> None:
    validator = jsonschema.Draft202012Validator(_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is None:
        _check_urls(raw)
        return
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    source = f"{config_path}: " if config_path else ""
    raise ConfigError(f"{source}setting {where}: {_expected(error)}")


def _expected(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unknown setting ({error.message})"
    return f"{error.message} (got {error.instance!r})"


def _check_urls(raw: dict[str, Any]) -> None:
    for url in raw.get("comfyui", {}).get("urls", []):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"setting comfyui.urls: expected http://host:port, got {url!r}")
    for key in ("status",):
        port = raw.get(key, {}).get("port")
        if port is not None and not isinstance(port, int):
            raise ConfigError(f"setting {key}.port: expected a port number, got {port!r}")


def _build(raw: dict[str, Any], base: Path) -> Settings:
    def resolve(value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)

    storage = resolve(raw.get("storage", "storage"))
    database_url = (raw.get("database") or {}).get("url") or f"sqlite:///{storage / 'vidgen.db'}"
    inbox_rows = raw.get("inboxes") or [{"path": "inbox"}]
    inboxes = tuple(
        InboxSettings(
            path=resolve(row["path"]),
            polling=row.get("polling", False),
            stable_seconds=float(row.get("stableSeconds", 2.0)),
            outbox=resolve(row["outbox"]) if row.get("outbox") else None,
        )
        for row in inbox_rows
    )
    generation = raw.get("generation", {})
    width, height = parse_resolution(generation.get("resolution", "512x512"))
    return Settings(
        database_url=database_url,
        storage=storage,
        outbox=resolve(raw.get("outbox", "outbox")),
        inboxes=inboxes,
        intake=IntakeSettings(**_snake(raw.get("intake", {}))),
        comfyui=_comfyui(raw.get("comfyui", {})),
        jobs=JobSettings(**_snake(raw.get("jobs", {}))),
        models=ModelSettings(**_snake(raw.get("models", {}))),
        generation=GenerationDefaults(
            width=width,
            height=height,
            **_snake({k: v for k, v in generation.items() if k != "resolution"}),
        ),
        status=StatusSettings(**_snake(raw.get("status", {}))),
        logging=LoggingSettings(**_snake(raw.get("logging", {}))),
    )


def _comfyui(section: dict[str, Any]) -> ComfyUISettings:
    values = _snake(section)
    if "urls" in values:
        values["urls"] = tuple(u.rstrip("/") for u in values["urls"])
    return ComfyUISettings(**values)


def _snake(section: dict[str, Any]) -> dict[str, Any]:
    """camelCase keys of config.yaml to the dataclasses' snake_case fields."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        out[snake] = value
    return out
