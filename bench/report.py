"""Writing a benchmark's results into docs/benchmarks.md: each benchmark owns one ``## `` section
and replaces only that one, so they can run in any order."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.mariadb import free_port
from vidgen.config import Settings, load_settings

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = """# Benchmarks

Measured on the project's reference machine (2 cores, 24 GB, no GPU) unless a section says
otherwise. Each section is written by its script; `bench/run_all.py` runs them all. Numbers move
by ±30 % with the machine's load: compare within a section, not across days.
"""


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    python = platform.python_version()
    return f"{platform.system()} {platform.release()}, {cores} cores, Python {python}"


def write_section(title: str, body: str, command: str) -> None:
    """Replace (or append) the ``## title`` section of docs/benchmarks.md."""
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else _HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"## {title}\n\nCommand: `{command}` — run {stamp} on {machine()}.\n\n{body.strip()}\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS.write_text(text.rstrip() + "\n", encoding="utf-8")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0..1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def bench_settings(root: Path, url: str, **sections: Any) -> Settings:
    """Settings for a benchmark: its folders under ``root`` (made), the database at ``url``,
    and ``sections`` in config.yaml's shape over the defaults (e.g. ``status={"port": 0}``)."""
    for name in ("inbox", "outbox", "storage"):
        (root / name).mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "database": {"url": url},
        "storage": str(root / "storage"),
        "outbox": str(root / "outbox"),
        "inboxes": [{"path": str(root / "inbox")}],
        **sections,
    }
    return load_settings(None, {}, overrides=overrides)


@contextmanager
def double_process(root: Path, step_seconds: float) -> Iterator[str]:
    """The ComfyUI double as a process of its own on a free port, ``step_seconds`` per sampler
    step; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.comfyui_double",
            "--port",
            str(port),
            "--root",
            str(root),
            "--step-seconds",
            str(step_seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=BENCHMARKS.parent.parent,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "listening on …"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
