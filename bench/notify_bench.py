"""Notifications hold up no worker: how long an export takes from queued to completed with no
notification target, and with a webhook that accepts the connection and never answers (every
try of it waits out ``notifications.timeoutSeconds``, here 30 s). Results go to the
"Notifications" section of docs/benchmarks.md.

    python bench/notify_bench.py      (from the repository's folder; about a minute)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 8


def measure(url: str, root: Path, hook: str | None, clip: Path, tag: str) -> list[float]:
    """Seconds from queueing each of ``ROUNDS`` one-clip exports to its completion, in turn."""
    from bench.report import bench_settings
    from tests.fixtures.pipeline import job_row, queue_export, ready_clips
    from vidgen.db.session import open_database
    from vidgen.runtime import Part, start
    from vidgen.specs import ExportSpec

    webhooks = [{"url": hook, "events": ["completed"]}] if hook else []
    notifications = {"webhooks": webhooks, "pollSeconds": 0.2, "timeoutSeconds": 30.0}
    settings = bench_settings(root, url, notifications=notifications, jobs={"pollSeconds": 0.05})
    database = open_database(url)
    services = start(settings, {Part.WORK})
    durations = []
    try:
        for index in range(ROUNDS):
            ids = ready_clips(database, [clip], project_name=f"{tag}{index}")
            started = time.monotonic()
            job_id = queue_export(database, ids, ExportSpec(), settings.outbox)
            while job_row(database, job_id).job_status != "completed":
                time.sleep(0.02)
            durations.append(time.monotonic() - started)
    finally:
        services.stop()
        database.dispose()
    return durations


def report(results: dict[str, list[float]]) -> str:
    from bench.report import percentile

    lines = [
        f"{ROUNDS} exports of one 2 s 512×512 clip each, in turn, on one CPU worker; seconds from",
        "queued to completed. The second row has a webhook that accepts the connection and never",
        "answers: the notifier's try waits 30 s for an answer (later events queue behind it); no export waits.",
        "",
        "| webhook | median s | p90 s | max s |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in results.items():
        lines.append(
            f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.9):.2f} "
            f"| {max(values):.2f} |"
        )
    return "\n".join(lines)


def measure_all(url: str) -> dict[str, list[float]]:
    from tests.fixtures.receiver import BlackHole
    from vidgen.db.session import open_database, upgrade

    database = open_database(url)
    upgrade(database)
    database.dispose()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = root / "clip.mp4"
        source = "testsrc2=size=512x512:rate=8:duration=2"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                source,
                "-pix_fmt",
                "yuv420p",
                str(clip),
            ],
            check=True,
        )
        results = {"none": measure(url, root / "none", None, clip, "none")}
        hole = BlackHole()
        try:
            results["never answers"] = measure(url, root / "hole", hole.url, clip, "hole")
        finally:
            hole.close()
    return results


def main() -> int:
    sys.path.insert(0, str(REPO))  # bench/ and tests/ helpers, as the other benchmarks do
    from bench.report import write_section
    from tests.mariadb import throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
    if given:
        results = measure_all(given)
    else:
        with throwaway_mariadb() as url:
            results = measure_all(url)
    write_section("Notifications", report(results), "python bench/notify_bench.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
