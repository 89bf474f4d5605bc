"""How long a user's cancel takes to reach ComfyUI: from ``cancel_project`` to the interrupt
arriving at the double, for a prompt that sends no progress meanwhile (stalled in its sampler),
with the default lease round (``jobs.leaseRenewSeconds`` 15 s). Results go to the "Cancel"
section of docs/benchmarks.md.

    python bench/cancel_bench.py      (from the repository's folder; about a minute)
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 8


def measure(url: str, root: Path) -> list[float]:
    """Seconds from each cancel to the interrupt reaching ComfyUI, ``ROUNDS`` times."""
    from bench.report import bench_settings
    from stages.pool import make_workers
    from tests.comfyui_double import ComfyUIDouble
    from tests.fixtures.pipeline import clip_row, job_row, queue_clip, text_clip
    from vidgen.db.jobs import cancel_project
    from vidgen.db.session import open_database, upgrade

    double = ComfyUIDouble(root / "comfyui").start()
    settings = bench_settings(
        root, url, comfyui={"urls": [double.url]}, jobs={"cpuWorkers": 0, "pollSeconds": 0.1}
    )
    database = open_database(url)
    upgrade(database)
    (worker,) = make_workers(settings, database)
    worker.start()
    latencies = []
    try:
        for index in range(ROUNDS):
            double.stall("KSampler")
            spec = text_clip(settings, f"clip{index}")
            clip_id, job_id = queue_clip(database, spec, project_name=f"cancel{index}")
            _wait(
                lambda job_id=job_id: (
                    double.is_stalling and "KSampler" in job_row(database, job_id).current_stage
                )
            )
            started = time.monotonic()
            cancel_project(database, clip_row(database, clip_id).project_id)
            _wait(lambda: not double.is_stalling)
            latencies.append(time.monotonic() - started)
            _wait(lambda job_id=job_id: job_row(database, job_id).job_status == "cancelled")
    finally:
        worker.stop()
        worker.join(15)
        database.dispose()
        double.stop()
    return latencies


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's double or worker did not get there in time")
        time.sleep(0.01)


def report(latencies: list[float]) -> str:
    from bench.report import percentile

    return "\n".join(
        [
            f"{ROUNDS} clips, each cancelled while its prompt is stalled in the sampler (no",
            "progress message comes), on one backend worker with the default lease round of 15 s;",
            "seconds from `cancel_project` to the interrupt arriving at the double.",
            "",
            "| measure | result | goal |",
            "| --- | --- | --- |",
            f"| median | {percentile(latencies, 0.5):.2f} s | |",
            f"| max | {max(latencies):.2f} s | < 2 s |",
        ]
    )


def main() -> int:
    sys.path.insert(0, str(REPO))  # bench/ and tests/ helpers, as the other benchmarks do
    from bench.report import write_section
    from tests.mariadb import throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
        if given:
            latencies = measure(given, Path(folder))
        else:
            with throwaway_mariadb() as url:
                latencies = measure(url, Path(folder))
    write_section("Cancel", report(latencies), "python bench/cancel_bench.py")
    print(report(latencies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
