"""Generation overhead: what vidgen adds per clip around ComfyUI, the backend's idle gap between
consecutive prompts, and 20 clips on two backends against one.

The ComfyUI double runs as its own process with a fixed execution time per clip; vidgen's
workers run in this process against a throwaway MariaDB. Results go to docs/benchmarks.md.

    python bench/generate_bench.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

# Run as a script, Python puts bench/ (not the repository) on sys.path; bench/ and tests/ live there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import bench_settings, double_process, percentile, write_section
from stages.pool import make_workers
from stages.worker import Worker
from tests.fixtures.pipeline import queue_clip, text_clip
from tests.mariadb import throwaway_mariadb
from vidgen.config import Settings
from vidgen.db.models import Job
from vidgen.db.session import Database, open_database, upgrade

STEPS = 20
STEP_SECONDS = 0.1  # 20 steps: the double's execution takes about 2 s a clip


def settings_for(root: Path, url: str, backends: list[str]) -> Settings:
    jobs = {"pollSeconds": 0.05, "cpuWorkers": 0}
    return bench_settings(root, url, comfyui={"urls": backends}, jobs=jobs)


def run_batch(database: Database, settings: Settings, clips: int, project: str) -> float:
    """Queue ``clips`` clips, run them on the settings' backends; the wall time in seconds."""
    ids = [
        queue_clip(
            database,
            text_clip(settings, f"clip{n}", seed=n, steps=STEPS, width=64, height=64),
            project_name=project,
            order_index=n,
        )[1]
        for n in range(clips)
    ]
    workers = make_workers(settings, database)
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        while not _all_done(database, ids):
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        _stop(workers)


def _all_done(database: Database, ids: list[str]) -> bool:
    with database.session() as session:
        states = [session.get_one(Job, i).job_status for i in ids]
    if "failed" in states:
        raise RuntimeError("a clip failed during the benchmark")
    return all(s == "completed" for s in states)


def _stop(workers: list[Worker]) -> None:
    for worker in workers:
        worker.stop()
    for worker in workers:
        worker.join(10)


def observations(url: str) -> dict[str, object]:
    return httpx.get(f"{url}/__double__/observations", timeout=10).json()  # type: ignore[no-any-return]


def executions(url: str) -> list[float]:
    runs = observations(url)["runs"]
    return [r["ended_at"] - r["started_at"] for r in runs if r.get("ended_at")]  # type: ignore[union-attr]


def gaps(url: str) -> list[float]:
    runs = sorted(
        (r for r in observations(url)["runs"] if r.get("ended_at")),  # type: ignore[union-attr]
        key=lambda r: r["started_at"],
    )
    return [b["started_at"] - a["ended_at"] for a, b in itertools.pairwise(runs)]


def main() -> int:
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidgen-bench-")))
        url = stack.enter_context(throwaway_mariadb())
        database = open_database(url)
        upgrade(database)
        first = stack.enter_context(double_process(root / "comfyui-a", STEP_SECONDS))
        second = stack.enter_context(double_process(root / "comfyui-b", STEP_SECONDS))

        one = settings_for(root / "one", url, [first])
        wall_one = run_batch(database, one, 20, "oneBackend")
        execution = executions(first)
        added = (wall_one - sum(execution)) / len(execution)
        idle = gaps(first)

        two = settings_for(root / "two", url, [first, second])
        before = len(executions(first))
        wall_two = run_batch(database, two, 20, "twoBackends")
        spread = (len(executions(first)) - before, len(executions(second)))
        database.dispose()

    body = f"""Each clip: {STEPS} sampler steps of {STEP_SECONDS} s in the double (measured execution
{statistics.median(execution):.2f} s median, incl. writing the 64x64 video with ffmpeg).

| measure | result | goal |
| --- | --- | --- |
| time vidgen adds per clip, (wall − execution) / clips, 20 clips on 1 backend | {added * 1000:.0f} ms | < 250 ms |
| backend idle gap between consecutive prompts, median / p99 / max | {statistics.median(idle) * 1000:.1f} / {percentile(idle, 0.99) * 1000:.1f} / {max(idle) * 1000:.1f} ms | < 50 ms |
| 20 clips on 1 backend | {wall_one:.1f} s | |
| 20 clips on 2 backends (clips per backend: {spread[0]} + {spread[1]}) | {wall_two:.1f} s = {wall_two / wall_one:.2f} × one backend | about 0.5 × |
"""
    print(body)
    write_section("Generation (ComfyUI overhead)", body, "python bench/generate_bench.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
