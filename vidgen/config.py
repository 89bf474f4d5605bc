"""Settings: config.yaml (or --config / VIDGEN_CONFIG), then environment overrides, validated once.

The only module that reads ``os.environ``. Everything else is handed a frozen ``Settings``. Each
setting is declared once, on its field below (``vidgen.declarations``); the schema, config.yaml's
text and the environment overrides come from those declarations. ``python -m vidgen.config``
prints config.yaml, ``--write`` rewrites the repository's copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema
import yaml

from vidgen.declarations import (
    apply_environment,
    build,
    environment_names,
    plain,
    render,
    required,
    schema_of,
    section,
    setting,
)
from vidgen.errors import ConfigError
from vidgen.specs import RESOLUTION_PATTERN, parse_resolution

DEFAULT_CONFIG_NAME = "config.yaml"
REPOSITORY_CONFIG = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG_NAME


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str | None = setting(
        None,
        "SQLAlchemy URL; null = SQLite at {storage}/vidgen.db. "
        "MariaDB: mysql+pymysql://user:pass@host/vidgen?charset=utf8mb4",
        env="VIDGEN_DATABASE_URL",
    )


@dataclass(frozen=True, slots=True)
class InboxSettings:
    path: Path = required("the folder")
    polling: bool = setting(
        False, "true for SMB/NFS/CIFS shares, where inotify sees no other host's writes"
    )
    stable_seconds: float = setting(
        2.0, "a file arriving by rename or over a share must keep size+mtime this long", minimum=0
    )
    outbox: Path | None = setting(None, "this inbox's own outbox; null = the global one")
    # A preset: what every manifest dropped here gets under its own settings.
    defaults: Mapping[str, Any] | None = setting(
        None, "clip settings, as a manifest's `defaults`, under the manifest's own"
    )
    export: Mapping[str, Any] | None = setting(
        None, "an export section, as a manifest's `export`, under the manifest's own"
    )

    @property
    def name(self) -> str:
        """How `vidgen validate --inbox` and messages name this inbox: its folder's name."""
        return self.path.name


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    rescan_seconds: float = setting(
        30.0, "full rescan of every inbox, catching what events missed", exclusive_minimum=0
    )
    missing_files_grace_seconds: float = setting(
        60.0, "how long a manifest waits for the files it names before it is rejected", minimum=0
    )
    poll_interval_seconds: float = setting(
        1.0, "PollingObserver's interval for polling inboxes", exclusive_minimum=0
    )
    workers: int = setting(
        2,
        "manifests taken at once (one's database round trips overlap another's parsing)",
        minimum=1,
        maximum=16,
    )
    retry_backoff_seconds: float = setting(
        1.0,
        "a claimed manifest that met a passing failure (database away, disk full) is tried "
        "again after this long, doubling each time up to rescanSeconds",
        exclusive_minimum=0,
    )
    heartbeat_seconds: float = setting(
        10.0,
        "how often intake records that it is alive (/health reports one silent for 3 beats)",
        exclusive_minimum=0,
    )


_MB = 1000 * 1000


@dataclass(frozen=True, slots=True)
class LimitSettings:
    image_bytes: int = setting(50 * _MB, "bytes per referenced image", minimum=1)
    image_pixels: int = setting(
        64_000_000,
        "pixels (width x height) per referenced image, read from its header before anything "
        "decodes it",
        minimum=1,
    )
    video_bytes: int = setting(2000 * _MB, "bytes per imported video", minimum=1)
    video_pixels: int = setting(
        8192 * 4320, "pixels (width x height) per frame of an imported video", minimum=1
    )
    manifest_bytes: int = setting(
        4000 * _MB, "bytes of all the files one manifest names, together", minimum=1
    )


@dataclass(frozen=True, slots=True)
class ComfyUISettings:
    urls: tuple[str, ...] = setting(
        ("http://127.0.0.1:8188",),
        "one worker per backend (one GPU each)",
        env="VIDGEN_COMFYUI_URLS",
        items={"min_length": 1},
    )
    request_timeout_seconds: float = setting(
        30.0, "one HTTP request to ComfyUI", exclusive_minimum=0
    )
    connect_timeout_seconds: float = setting(
        5.0, "opening a connection to ComfyUI", exclusive_minimum=0
    )
    quiet_socket_seconds: float = setting(
        10.0,
        "a socket quiet this long makes the client ask /history and /queue",
        exclusive_minimum=0,
    )
    history_retry_seconds: float = setting(
        5.0, "execution_success can come before /history has the outputs", minimum=0
    )
    wait_for_backend_seconds: float = setting(
        5.0,
        "how often a job waiting for an unreachable backend tries again",
        exclusive_minimum=0,
    )
    upscale_chunk_frames: int = setting(
        16,
        "frames per upscale prompt, so a 12 GB card never runs out of memory",
        minimum=1,
        maximum=1024,
    )
    prompt_timeout_seconds: float = setting(
        3600.0,
        "a prompt still running after this long is stopped and its job fails",
        exclusive_minimum=0,
    )

    def __post_init__(self) -> None:
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"setting comfyui.urls: expected http://host:port, got {url!r}")
        # One spelling per backend: workers, the catalogue and the health page all key on it.
        object.__setattr__(self, "urls", tuple(url.rstrip("/") for url in self.urls))


@dataclass(frozen=True, slots=True)
class JobSettings:
    lease_seconds: float = setting(
        60.0, "a claimed job belongs to its worker this long unless renewed", exclusive_minimum=0
    )
    lease_renew_seconds: float = setting(
        15.0, "how often a working worker renews its lease", exclusive_minimum=0
    )
    poll_seconds: float = setting(
        0.5, "how often an idle worker looks for work", exclusive_minimum=0
    )
    backend_takeover_seconds: float = setting(
        120.0,
        "past its lease, how long a job waits for its backend's worker before another takes it",
        minimum=0,
    )
    max_attempts: int = setting(5, "tries of a transient failure before the job fails", minimum=1)
    retry_backoff_seconds: float = setting(2.0, "first retry delay; doubles each try", minimum=0)
    retry_backoff_max_seconds: float = setting(60.0, "longest retry delay", minimum=0)
    cpu_workers: int = setting(
        1,
        "workers for jobs that need no GPU (imports, FFmpeg exports)",
        minimum=0,
        maximum=16,
    )


@dataclass(frozen=True, slots=True)
class ModelSettings:
    checkpoint: str = setting("realisticVisionV51_v51VAE.safetensors", min_length=1)
    vae: str = setting("vae-ft-mse-840000-ema-pruned.safetensors", min_length=1)
    motion_module: str = setting("mm_sd_v15_v2.ckpt", min_length=1)
    ip_adapter: str = setting("ip-adapter-plus_sd15.safetensors", min_length=1)
    clip_vision: str = setting("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", min_length=1)
    upscale: str = setting("RealESRGAN_x4plus.pth", min_length=1)
    rife: str = setting("rife47.pth", min_length=1)


@dataclass(frozen=True, slots=True)
class GenerationDefaults:
    frames: int = setting(16, "AnimateDiff frames; clips play at frameRate", minimum=8, maximum=128)
    frame_rate: int = setting(8, "fps of generated clips", minimum=1, maximum=60)
    steps: int = setting(20, minimum=1, maximum=150)
    cfg: float = setting(7.5, minimum=0, maximum=30)
    resolution: str = setting("512x512", pattern=RESOLUTION_PATTERN)
    negative_prompt: str = setting("blurry, low quality, watermark")
    ip_adapter_weight: float = setting(0.8, minimum=0, maximum=2)
    width: int = field(init=False)  # of resolution, in pixels
    height: int = field(init=False)

    def __post_init__(self) -> None:
        width, height = parse_resolution(self.resolution)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "height", height)


@dataclass(frozen=True, slots=True)
class StatusSettings:
    host: str = setting(
        "127.0.0.1", "bound elsewhere, a token is required", env="VIDGEN_STATUS_HOST", min_length=1
    )
    port: int = setting(
        8000, env="VIDGEN_STATUS_PORT", expected="a port number", minimum=0, maximum=65535
    )
    token: str | None = setting(
        None, "bearer token (or ?token= once, kept as a cookie)", env="VIDGEN_STATUS_TOKEN"
    )
    threads: int = setting(
        16,
        "WSGI threads; each live page holds one for its event stream",
        minimum=2,
        maximum=256,
    )
    sse_max_seconds: float = setting(
        300.0,
        "an event stream closes after this long; the browser reconnects",
        exclusive_minimum=0,
    )


EventKind = Literal["completed", "failed", "rejected", "queueEmpty", "attention"]
EVENT_KINDS: tuple[EventKind, ...] = ("completed", "failed", "rejected", "queueEmpty", "attention")


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    url: str = required("where to send it", min_length=1)
    events: tuple[EventKind, ...] = setting(
        EVENT_KINDS, "which events it gets", min_items=1, unique_items=True
    )


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    webhooks: tuple[NotifyTarget, ...] = setting((), "URLs vidgen POSTs each event to as JSON")
    apprise: tuple[NotifyTarget, ...] = setting(
        (), "Apprise URLs (ntfy://…, discord://…, tgram://…, mailto://…)"
    )
    status_url: str | None = setting(
        None, "the status page's address in messages; null = http://{status.host}:{status.port}"
    )
    attention_after_seconds: float = setting(
        300.0,
        "a backend unreachable or a disk under minFreeBytes this long sends attention",
        minimum=0,
    )
    timeout_seconds: float = setting(10.0, "one delivery attempt", exclusive_minimum=0)
    retry_seconds: float = setting(10.0, "first retry of a failed delivery; doubles", minimum=0)
    retry_max_seconds: float = setting(3600.0, "longest wait between two tries", minimum=0)
    max_attempts: int = setting(12, "tries before a delivery is given up", minimum=1)
    poll_seconds: float = setting(
        2.0, "how often the notifier looks for events and checks for attention", exclusive_minimum=0
    )

    def __post_init__(self) -> None:
        for target in self.webhooks:
            parts = urlsplit(target.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"setting notifications.webhooks: expected http(s)://host/path, "
                    f"got {target.url!r}"
                )


@dataclass(frozen=True, slots=True)
class GCSettings:
    every_hours: float = setting(
        24.0, "`vidgen run` cleans storage this often; 0 = only `vidgen gc`", minimum=0
    )
    keep_export_work_days: float = setting(
        7.0, "an ended export's intermediate files (its work folder) are kept this long", minimum=0
    )


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    gpu_hours: tuple[str, ...] = setting(
        (),
        'local times ComfyUI jobs are started in, e.g. ["22:00-07:00"]; empty = any time. '
        "FFmpeg-only work runs any time",
        items={"pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"},
    )


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", "DEBUG shows every ffmpeg argv and ComfyUI message"
    )
    json: bool = setting(False, "JSON lines in storage/logs/vidgen.log instead of readable lines")


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = section(DatabaseSettings)
    storage: Path = setting(
        Path("storage"),
        "clips, thumbnails, refs, manifests, work files, logs",
        env="VIDGEN_STORAGE",
    )
    outbox: Path = setting(
        Path("outbox"), "finished videos (an inbox may name its own)", env="VIDGEN_OUTBOX"
    )
    min_free_bytes: int = setting(
        1_000_000_000,
        "less free space on storage or an outbox: attention, and `vidgen doctor` warns",
        minimum=0,
    )
    inboxes: tuple[InboxSettings, ...] = setting(
        (InboxSettings(Path("inbox")),),
        "folders watched for manifests",
        env="VIDGEN_INBOX",
        min_items=1,
    )
    intake: IntakeSettings = section(IntakeSettings)
    limits: LimitSettings = section(
        LimitSettings, "what a manifest's files may be; each file is stored once per project"
    )
    comfyui: ComfyUISettings = section(ComfyUISettings)
    jobs: JobSettings = section(JobSettings)
    models: ModelSettings = section(
        ModelSettings, "defaults; a clip may name others. The file extension may be left out"
    )
    generation: GenerationDefaults = section(
        GenerationDefaults, "clip defaults a manifest may override"
    )
    status: StatusSettings = section(StatusSettings)
    logging: LoggingSettings = section(LoggingSettings)
    notifications: NotificationSettings = section(
        NotificationSettings, "each target gets the events it names (docs: README, Notifications)"
    )
    gc: GCSettings = section(GCSettings, "what `vidgen gc` and its daily run keep")
    schedule: ScheduleSettings = section(
        ScheduleSettings, "when work may start; a file named PAUSE in an inbox holds it all"
    )
    database_url: str = field(init=False)  # database.url, or SQLite in storage when that is null

    def __post_init__(self) -> None:
        url = self.database.url or f"sqlite:///{self.storage / 'vidgen.db'}"
        object.__setattr__(self, "database_url", url)

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


# What a config file is validated against: the JSON schema the declarations above make.
SCHEMA = schema_of(Settings)


def config_yaml() -> str:
    """The text of config.yaml: every setting with its default and comment."""
    variables = ", ".join(environment_names(Settings)) + "."
    header = [
        "# vidgen settings. Every key is optional: this file shows each with its default.",
        "# Relative paths are relative to this file's folder. Environment variables override:",
        *textwrap.wrap(
            variables,
            width=100,
            initial_indent="# ",
            subsequent_indent="# ",
            break_long_words=False,
            break_on_hyphens=False,
        ),
    ]
    return render(Settings, header)


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
    # From the defaults in the file's shape, so a default (a relative path too) is read like a value
    raw = _merge(plain(Settings()), _read_yaml(config_path) if config_path else {})
    if overrides:
        raw = _merge(raw, dict(overrides))
    raw = apply_environment(Settings, raw, env)
    _validate(raw, config_path)
    base = (config_path.parent if config_path else Path.cwd()).resolve()

    def resolve(value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

    return build(Settings, raw, resolve)


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


def _validate(raw: dict[str, Any], config_path: Path | None) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(raw)
    )
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    source = f"{config_path}: " if config_path else ""
    raise ConfigError(f"{source}setting {where}: {_expected(error)}")


def _expected(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unknown setting ({error.message})"
    return f"{error.message} (got {error.instance!r})"


def main(argv: list[str] | None = None) -> int:
    """Print config.yaml as the declarations make it, or (``--write``) rewrite the repository's."""
    parser = argparse.ArgumentParser(prog="python -m vidgen.config", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {REPOSITORY_CONFIG}")
    arguments = parser.parse_args(argv)
    if arguments.write:
        REPOSITORY_CONFIG.write_text(config_yaml(), encoding="utf-8")
    else:
        sys.stdout.write(config_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
