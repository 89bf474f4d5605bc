"""The `vidgen` command: parsing and wiring only."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from vidgen.config import Settings, load_settings
from vidgen.db.session import url_without_password
from vidgen.errors import ConfigError, VidgenError
from vidgen.logs import setup_logging

log = logging.getLogger("vidgen")


class _State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="config file (default: $VIDGEN_CONFIG, else ./config.yaml if present)",
)
@click.pass_context
def main(context: click.Context, config_path: str | None) -> None:
    """vidgen: drop a YAML manifest into the inbox, get a finished video in the outbox."""
    context.obj = _State(config_path)


def _settings(context: click.Context) -> Settings:
    state: _State = context.obj
    return state.settings


def _serve(context: click.Context, parts: set[str]) -> None:
    from vidgen.runtime import Part, run_until_signalled, start

    settings = _settings(context)
    setup_logging(settings)
    services = start(settings, {Part(p) for p in parts})
    run_until_signalled(services)


@main.command()
@click.pass_context
def run(context: click.Context) -> None:
    """Everything in one process: watcher, workers and the status page."""
    _serve(context, {"watch", "work", "status"})


@main.command()
@click.pass_context
def watch(context: click.Context) -> None:
    """Only the inbox watcher (intake)."""
    _serve(context, {"watch"})


@main.command()
@click.pass_context
def work(context: click.Context) -> None:
    """Only the workers: one per ComfyUI backend plus the CPU workers."""
    _serve(context, {"work"})


@main.command()
@click.pass_context
def status(context: click.Context) -> None:
    """Only the read-only status page."""
    _serve(context, {"status"})


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--workflows", "show_workflows", is_flag=True, help="print the ComfyUI graphs")
@click.option(
    "--inbox",
    "inbox_name",
    metavar="NAME",
    help="check as dropped into this inbox (its folder's name), with its preset; "
    "default: the inbox the file is in",
)
@click.pass_context
def validate(
    context: click.Context, files: tuple[Path, ...], show_workflows: bool, inbox_name: str | None
) -> None:
    """Check manifests exactly as intake would; print the problems, or the plan."""
    from vidgen.validation import validate_files

    settings = _settings(context)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    ok = validate_files(
        settings,
        list(files),
        show_workflows=show_workflows,
        echo=click.echo,
        warn=lambda line: click.echo(line, err=True),
        inbox_name=inbox_name,
    )
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def manifest(video: Path) -> None:
    """Print the manifest that makes VIDEO again, from its metadata (or its NAME.json)."""
    from stages.recipe import manifest_yaml, read_recipe

    click.echo(manifest_yaml(read_recipe(video), video.name), nl=False)


@main.command()
@click.option("--follow", "-f", is_flag=True, help="keep showing live progress until Ctrl-C")
@click.option("--limit", default=30, show_default=True, help="how many of the newest jobs")
@click.pass_context
def jobs(context: click.Context, follow: bool, limit: int) -> None:
    """List jobs in the terminal."""
    from rich.console import Console

    from status.terminal import print_jobs
    from vidgen.runtime import open_migrated

    settings = _settings(context)
    database = open_migrated(settings)
    try:
        print_jobs(settings, database, follow=follow, console=Console(), limit=limit)
    except KeyboardInterrupt:
        pass
    finally:
        database.dispose()


@main.command()
@click.option("--test", "send_test", is_flag=True, help="send a test to each target")
@click.pass_context
def notify(context: click.Context, send_test: bool) -> None:
    """Send a test notification to every webhook and Apprise target (one line each)."""
    from vidgen.notifications.notifier import send_test as send_tests

    if not send_test:
        raise click.UsageError("say --test: vidgen notify --test sends a test to each target")
    results = send_tests(_settings(context))
    if not results:
        click.echo("no notification targets: add notifications.webhooks or .apprise to config.yaml")
    for result in results:
        target = result.target
        outcome = "ok" if result.error is None else f"failed: {result.error}"
        click.echo(f"{target.name} {target.where}: {outcome}")
    sys.exit(1 if any(r.error for r in results) else 0)


@main.command()
@click.pass_context
def gc(context: click.Context) -> None:
    """Remove what storage no longer needs (work folders, removed clips); print what it freed."""
    from stages.gc import collect_garbage
    from vidgen.runtime import open_migrated

    settings = _settings(context)
    database = open_migrated(settings)
    try:
        for line in collect_garbage(settings, database).lines():
            click.echo(line)
    finally:
        database.dispose()


@main.command()
@click.pass_context
def doctor(context: click.Context) -> None:
    """Check FFmpeg, the database, ComfyUI, the inboxes, disks and the status page; say what to
    fix. Exit 1 on any error."""
    from vidgen.doctor import Level, diagnose

    findings = diagnose(_settings(context))
    for finding in findings:
        click.echo(finding.line())
    sys.exit(1 if any(f.level is Level.ERROR for f in findings) else 0)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@click.pass_context
def upgrade(context: click.Context) -> None:
    """Apply the Alembic migrations (also done at every start)."""
    from vidgen.runtime import open_migrated

    settings = _settings(context)
    open_migrated(settings).dispose()
    click.echo(f"database at {url_without_password(settings.database_url)} is up to date")


@main.command("config")
@click.pass_context
def show_config(context: click.Context) -> None:
    """Print the settings in force (after config file and environment)."""
    settings = _settings(context)
    click.echo(json.dumps(_jsonable(settings), indent=2, ensure_ascii=False))


def _jsonable(value: object) -> object:
    from dataclasses import fields, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return url_without_password(value)
    return value


def entry() -> None:
    """Console-script entry: settings and vidgen errors become one line and an exit code."""
    try:
        main(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"vidgen: {exc.user_message}", err=True)
        sys.exit(2)
    except VidgenError as exc:
        click.echo(f"vidgen: {exc.user_message}", err=True)
        sys.exit(1)
    except OSError as exc:  # a folder that cannot be made or read at start-up
        click.echo(f"vidgen: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
