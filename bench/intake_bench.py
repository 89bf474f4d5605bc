"""Intake benchmark: from a manifest's writer closing the file to its jobs committed, with inotify
and with polling; 1,000 manifests dropped at once; the watcher's resident memory.

The watcher and intake run in this process against a throwaway MariaDB (or the one named by
VIDGEN_TEST_DATABASE_URL). The commit time of each manifest is the moment intake logs
"accepted <path>", which it does right after the transaction commits. Results go to the
"Intake" section of docs/benchmarks.md.

    python bench/intake_bench.py      (from the repository's folder)
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidgen.config import Settings, load_settings
from vidgen.db.session import Database, open_database, upgrade
from watcher.intake import Intake
from watcher.observer import Watcher

REPO = Path(__file__).resolve().parent.parent
LATENCY_DROPS = 200
BURST = 1000
STABLE_SECONDS = 0.5
POLL_SECONDS = 0.5
POLLING_SPACING_SECONDS = 0.1


class CommitTimes(logging.Handler):
    """Wall time of each "accepted <path>" line intake logs right after its commit."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: dict[str, float] = {}
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("accepted ") and record.args:
            with self.changed:
                self.times[str(record.args[0])] = record.created
                self.changed.notify_all()

    def wait_for(self, paths: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not all(p in self.times for p in paths):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sum(p not in self.times for p in paths)
                    raise TimeoutError(f"{missing} manifest(s) not recorded in {timeout_s} s")
                self.changed.wait(left)


def settings_for(root: Path, url: str, *, polling: bool) -> Settings:
    inbox = root / "inbox"
    for folder in (inbox, root / "storage", root / "outbox"):
        folder.mkdir(parents=True, exist_ok=True)
    return load_settings(
        None,
        {},
        overrides={
            "database": {"url": url},
            "storage": str(root / "storage"),
            "outbox": str(root / "outbox"),
            "inboxes": [{"path": str(inbox), "polling": polling, "stableSeconds": STABLE_SECONDS}],
            "intake": {"rescanSeconds": 30.0, "pollIntervalSeconds": POLL_SECONDS},
        },
    )


def drop(inbox: Path, name: str) -> tuple[str, float]:
    """Write a manifest (a project of its own); the time is taken as the writer closes it."""
    path = inbox / name
    with path.open("w", encoding="utf-8") as writer:
        writer.write(f"project: bench {name}\nclips:\n  - prompt: a red fox\n  - prompt: snow\n")
    return str(path), time.time()


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_watcher(
    settings: Settings, database: Database, body: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    watcher = Watcher(settings, Intake(settings, database))
    watcher.start()
    try:
        return body(settings.inboxes[0].path)
    finally:
        watcher.stop()


def latencies(commits: CommitTimes, polling: bool) -> Callable[[Path], dict[str, Any]]:
    def measure(inbox: Path) -> dict[str, Any]:
        closed: dict[str, float] = {}
        for n in range(LATENCY_DROPS):
            path, at = drop(inbox, f"{'p' if polling else 'i'}{n:03d}.yaml")
            closed[path] = at
            if polling:
                time.sleep(POLLING_SPACING_SECONDS)
            else:
                commits.wait_for([path], timeout_s=30)  # one at a time: latency, not queueing
        commits.wait_for(list(closed), timeout_s=60)
        values = [(commits.times[p] - at) * 1000 for p, at in closed.items()]
        return {"p50": statistics.median(values), "p99": percentile(values, 0.99)}

    return measure


# A user's copy tool, as its own process: writing 1,000 files from the benchmark's process would
# compete with the watcher for the interpreter and measure that instead.
_WRITER = """
import sys
from pathlib import Path
inbox = Path(sys.argv[1])
for n in range(int(sys.argv[2])):
    with (inbox / f"burst{n:04d}.yaml").open("w", encoding="utf-8") as writer:
        writer.write(f"project: bench burst{n:04d}\\nclips:\\n  - prompt: a red fox\\n  - prompt: snow\\n")
"""


def burst(commits: CommitTimes) -> Callable[[Path], dict[str, Any]]:
    def measure(inbox: Path) -> dict[str, Any]:
        idle = resident_mb()
        started = time.time()
        subprocess.run([sys.executable, "-c", _WRITER, str(inbox), str(BURST)], check=True)
        written = time.time() - started
        paths = [str(inbox / f"burst{n:04d}.yaml") for n in range(BURST)]
        commits.wait_for(paths, timeout_s=120)
        last = max(commits.times[p] for p in paths)
        return {"seconds": last - started, "written": written, "idle": idle, "after": resident_mb()}

    return measure


def percentile(values: list[float], fraction: float) -> float:
    from bench.report import percentile as nearest_rank

    return nearest_rank(values, fraction)


def measure_all(url: str) -> dict[str, dict[str, Any]]:
    database = open_database(url)
    upgrade(database)
    commits = CommitTimes()
    intake_log = logging.getLogger("watcher.intake")
    intake_log.addHandler(commits)
    intake_log.setLevel(logging.INFO)
    intake_log.propagate = False  # 1,400 "accepted" lines are measurements, not output
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="vidgen-intake-bench-") as folder:
            root = Path(folder)
            for name, polling, body in (
                ("inotify", False, latencies(commits, polling=False)),
                ("polling", True, latencies(commits, polling=True)),
                ("burst", False, burst(commits)),
            ):
                settings = settings_for(root / name, url, polling=polling)
                results[name] = run_watcher(settings, database, body)
                print(name, results[name], flush=True)
    finally:
        intake_log.removeHandler(commits)
        intake_log.propagate = True
        database.dispose()
    return results


def report(results: dict[str, dict[str, Any]]) -> str:
    inotify, polling, burst_ = results["inotify"], results["polling"], results["burst"]
    polling_goal = (POLL_SECONDS + STABLE_SECONDS) * 1000 + 300
    return f"""
Each manifest is a new project of two clips (one Project, two Clips, three Jobs, one Manifest
row). Latency runs from the writer closing the file to intake's transaction committing;
stableSeconds {STABLE_SECONDS}, poll interval {POLL_SECONDS} s. Inotify drops are one at a time;
polling drops come every {POLLING_SPACING_SECONDS * 1000:.0f} ms. MariaDB is a throwaway server
on the same machine; the watcher and intake run in one process.

| measure | result | goal |
| --- | --- | --- |
| latency with inotify, p50 / p99 over {LATENCY_DROPS} drops | {inotify["p50"]:.0f} / {inotify["p99"]:.0f} ms | p50 < 300 ms |
| latency with polling, p50 / p99 over {LATENCY_DROPS} drops | {polling["p50"]:.0f} / {polling["p99"]:.0f} ms | < {polling_goal:.0f} ms (interval + stableSeconds + 300 ms) |
| {BURST:,} manifests dropped at once, all recorded (MariaDB) | {burst_["seconds"]:.1f} s (writing them took {burst_["written"]:.2f} s) | < 10 s |
| resident memory of the watcher + intake process, idle / after the {BURST:,} | {burst_["idle"]:.0f} / {burst_["after"]:.0f} MB | < 150 MB |
"""


def main() -> int:
    # Run as a script, this folder is first on sys.path; the repository root holds bench/ and
    # tests/ (not installed), whose helpers this script shares.
    sys.path.insert(0, str(REPO))
    from bench.report import write_section
    from tests.mariadb import throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
    if given:
        results = measure_all(given)
    else:
        with throwaway_mariadb() as url:
            results = measure_all(url)
    write_section("Intake", report(results), "python bench/intake_bench.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
