"""Intake benchmark: from a manifest's writer closing the file to its jobs committed, with inotify
and with polling; 1,000 manifests dropped at once; the watcher's resident memory; and the
storage one 50 MB video costs when a manifest names it in 200 clips.

The watcher and intake run in this process against a throwaway MariaDB (or the one named by
VIDGEN_TEST_DATABASE_URL). The commit time of each manifest is the moment intake logs
"accepted <path>", which it does right after the transaction commits. Results go to the
"Intake" section of docs/benchmarks.md.

    python bench/intake_bench.py            (from the repository's folder)
    python bench/intake_bench.py storage    (the storage measurement alone, printed)
"""

from __future__ import annotations

import json
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

from vidgen.config import Settings
from vidgen.db.models import Manifest
from vidgen.db.session import Database, open_database, upgrade
from watcher.intake import Intake
from watcher.observer import Watcher

REPO = Path(__file__).resolve().parent.parent
LATENCY_DROPS = 200
BURST = 1000
BURST_ROUNDS = 3  # the machine's other load moves one round by ±25 %: the median is reported
STABLE_SECONDS = 0.5
POLL_SECONDS = 0.5
POLLING_SPACING_SECONDS = 0.1
STORAGE_CLIPS = 200
STORAGE_VIDEO_MB = 50
# Measured before issue 9 on the code it started from (ca1789e), this machine, the same way:
# burst rounds from `python bench/intake_bench.py`, storage from `… storage` run on that tree.
BEFORE_ISSUE_9: dict[str, Any] = {
    "burst": [10.4, 8.8, 8.4],
    "storage": {
        "video_mb": 49.8,
        "seconds": 103.4,
        "refs_mb": 49.8,
        "clips_mb": 9951.8,
        "thumbnails_mb": 2.5,
        "total_mb": 10004.0,
    },
}


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
    from bench.report import bench_settings  # the repository is on sys.path only from main()

    inbox = {"path": str(root / "inbox"), "polling": polling, "stableSeconds": STABLE_SECONDS}
    intake = {"rescanSeconds": 30.0, "pollIntervalSeconds": POLL_SECONDS}
    return bench_settings(root, url, inboxes=[inbox], intake=intake)


def drop(inbox: Path, name: str) -> tuple[str, float]:
    """Write a manifest (a project of its own); the time is taken as the writer closes it."""
    path = inbox / name
    with path.open("w", encoding="utf-8") as writer:
        writer.write(f"project: bench {name}\nclips:\n  - prompt: a red fox\n  - prompt: snow\n")
    return str(path), time.time()


def resident_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def whole_vidgen_run(url: str) -> dict[str, float]:
    """Resident memory of `vidgen run` itself (watcher, workers, status page) as its own
    process, idle and after recording a burst of manifests."""
    database = open_database(url)
    with tempfile.TemporaryDirectory(prefix="vidgen-run-bench-") as folder:
        root = Path(folder)
        for name in ("inbox", "outbox", "storage"):
            (root / name).mkdir()
        environment = {
            **os.environ,
            "VIDGEN_DATABASE_URL": url,
            "VIDGEN_INBOX": str(root / "inbox"),
            "VIDGEN_OUTBOX": str(root / "outbox"),
            "VIDGEN_STORAGE": str(root / "storage"),
            "VIDGEN_STATUS_PORT": "0",
            "VIDGEN_COMFYUI_URLS": "http://127.0.0.1:9",
        }
        vidgen = str(Path(sys.executable).with_name("vidgen"))
        process = subprocess.Popen(
            [vidgen, "run"], cwd=root, env=environment, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(5)  # started, migrated, watching, idle
            idle = resident_mb(process.pid)
            before = _manifest_count(database)
            subprocess.run(
                [sys.executable, "-c", _WRITER, str(root / "inbox"), str(BURST), "run"], check=True
            )
            deadline = time.monotonic() + 120
            while _manifest_count(database) < before + BURST and time.monotonic() < deadline:
                time.sleep(0.2)
            return {"idle": idle, "after": resident_mb(process.pid)}
        finally:
            process.terminate()
            process.wait(timeout=30)
            database.dispose()


def _manifest_count(database: Database) -> int:
    with database.session() as session:
        return session.query(Manifest).count()


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
        writer.write(f"project: bench {sys.argv[3]} {n:04d}\\nclips:\\n  - prompt: a red fox\\n  - prompt: snow\\n")
"""


def burst(commits: CommitTimes, round_number: int) -> Callable[[Path], dict[str, Any]]:
    def measure(inbox: Path) -> dict[str, Any]:
        idle = resident_mb()
        started = time.time()
        # Each round's manifests are new projects (a re-drop would be an update: less work).
        writer = [sys.executable, "-c", _WRITER, str(inbox), str(BURST), f"round{round_number}"]
        subprocess.run(writer, check=True)
        written = time.time() - started
        paths = [str(inbox / f"burst{n:04d}.yaml") for n in range(BURST)]
        commits.wait_for(paths, timeout_s=120)
        last = max(commits.times[p] for p in paths)
        return {"seconds": last - started, "written": written, "idle": idle, "after": resident_mb()}

    return measure


def storage_cost(url: str) -> dict[str, float]:
    """One manifest naming the same 50 MB video in 200 clips: intake, then a CPU worker imports
    every clip; what the project's folders hold on disk then (``du``: hard links once)."""
    from stages import make_workers

    database = open_database(url)
    upgrade(database)
    with tempfile.TemporaryDirectory(prefix="vidgen-storage-bench-") as folder:
        root = Path(folder)
        settings = settings_for(root, url, polling=False)
        video = _fifty_megabytes(settings.inboxes[0].path / "intro.mp4")
        clips = "".join(f"  - {{video: intro.mp4, name: c{n:03d}}}\n" for n in range(STORAGE_CLIPS))
        manifest = settings.inboxes[0].path / "many.yaml"
        manifest.write_text(f"project: Many\nclips:\n{clips}", encoding="utf-8")
        started = time.monotonic()
        Intake(settings, database).process(manifest)
        (worker,) = make_workers(_cpu_only(settings), database)
        worker.start()
        try:
            _wait_for_imports(database, STORAGE_CLIPS)
            seconds = time.monotonic() - started
        finally:
            worker.stop()
            worker.join(120)  # its export of the 200 clips is stopped, then it ends
            worker.release_held()
        used = _disk_usage(settings.storage / "many", ("refs", "clips", "thumbnails"))
    database.dispose()
    return {
        "video_mb": video / 1e6,
        "seconds": seconds,
        **{f"{name}_mb": size / 1e6 for name, size in used.items()},
        "total_mb": sum(used.values()) / 1e6,
    }


def _fifty_megabytes(target: Path) -> int:
    seconds = 20
    rate = f"{STORAGE_VIDEO_MB * 8 // seconds}M"
    source = f"testsrc2=size=640x360:rate=25:duration={seconds}"
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-minrate", rate]
    # Constant bitrate with filler data: testsrc2 alone compresses far below the target.
    encode += ["-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr"]
    encode += ["-pix_fmt", "yuv420p"]
    quiet = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run(
        ["ffmpeg", *quiet, "-f", "lavfi", "-i", source, *encode, str(target)], check=True
    )
    past = time.time() - 60
    os.utime(target, (past, past))
    return target.stat().st_size


def _cpu_only(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(
        settings,
        comfyui=replace(settings.comfyui, urls=()),
        jobs=replace(settings.jobs, cpu_workers=1),
    )


def _wait_for_imports(database: Database, count: int) -> None:
    from vidgen.db.models import Job

    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        with database.session() as session:
            done = (
                session.query(Job)
                .filter(Job.job_type == "generate", Job.job_status == "completed")
                .count()
            )
        if done >= count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the {count} imports did not finish")


def _disk_usage(project: Path, folders: tuple[str, ...]) -> dict[str, int]:
    """Bytes on disk of each folder, from one ``du`` run: a file with several names (a hard
    link) is counted once, in the first folder that holds it."""
    done = subprocess.run(
        ["du", "-s", "-B1", *folders], cwd=project, capture_output=True, text=True, check=False
    )
    sizes = {
        name: int(size) for size, name in (line.split("\t") for line in done.stdout.splitlines())
    }
    return {name: sizes.get(name, 0) for name in folders}


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
        # First, on an empty database: a CPU worker takes the oldest jobs first, and the bursts
        # leave thousands of exports queued behind clips no ComfyUI will make.
        results["storage"] = storage_cost(url)
        print("storage", results["storage"], flush=True)
        with tempfile.TemporaryDirectory(prefix="vidgen-intake-bench-") as folder:
            root = Path(folder)
            for name, polling, body in (
                ("inotify", False, latencies(commits, polling=False)),
                ("polling", True, latencies(commits, polling=True)),
                *((f"burst{n}", False, burst(commits, n)) for n in range(BURST_ROUNDS)),
            ):
                settings = settings_for(root / name, url, polling=polling)
                results[name] = run_watcher(settings, database, body)
                print(name, results[name], flush=True)
        rounds = [results.pop(f"burst{n}") for n in range(BURST_ROUNDS)]
        results["burst"] = {
            **rounds[-1],
            "seconds": statistics.median(r["seconds"] for r in rounds),
        }
        results["burst"]["all"] = [r["seconds"] for r in rounds]
        results["run"] = whole_vidgen_run(url)
        print("run", results["run"], flush=True)
    finally:
        intake_log.removeHandler(commits)
        intake_log.propagate = True
        database.dispose()
    return results


def report(results: dict[str, dict[str, Any]]) -> str:
    inotify, polling, burst_ = results["inotify"], results["polling"], results["burst"]
    polling_goal = (POLL_SECONDS + STABLE_SECONDS) * 1000 + 300
    before = BEFORE_ISSUE_9
    before_burst = statistics.median(before["burst"])
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
| {BURST:,} manifests dropped at once, all recorded (MariaDB), median of {BURST_ROUNDS} rounds | {burst_["seconds"]:.1f} s (rounds: {", ".join(f"{s:.1f}" for s in burst_["all"])} s); before issue 9: {before_burst:.1f} s ({", ".join(f"{s:.1f}" for s in before["burst"])} s) | < 10 s |
| resident memory of the watcher + intake process, idle / after the {BURST:,} | {burst_["idle"]:.0f} / {burst_["after"]:.0f} MB | < 150 MB |
| resident memory of `vidgen run` (watcher, workers, status page), idle / after another {BURST:,} | {results["run"]["idle"]:.0f} / {results["run"]["after"]:.0f} MB | < 150 MB |

{storage_report(results["storage"], before["storage"])}
"""


def storage_report(after: dict[str, float], before: dict[str, float]) -> str:
    def row(label: str, key: str, unit: str = "MB") -> str:
        then = f"{before[key]:,.0f} {unit}" if key in before else "not measured"
        return f"| {label} | {then} | {after[key]:,.0f} {unit} |"

    return "\n".join(
        [
            f"One manifest names one {after['video_mb']:.0f} MB video (H.264, 640x360, 20 s) in "
            f"{STORAGE_CLIPS} clips; a CPU worker imports them all. Disk used by the project's",
            "folders afterwards (`du`, so a file with several names counts once); the goal is "
            "about one copy of the video.",
            "",
            "| storage/many/ | before issue 9 | now |",
            "| --- | --- | --- |",
            row("refs/ (intake's checked copy)", "refs_mb"),
            row(f"clips/ ({STORAGE_CLIPS} imported clips, beyond what refs/ holds)", "clips_mb"),
            row("thumbnails/", "thumbnails_mb"),
            row("all three", "total_mb"),
            row("from the drop to the last clip imported", "seconds", "s"),
        ]
    )


def main() -> int:
    # Run as a script, this folder is first on sys.path; the repository root holds bench/ and
    # tests/ (not installed), whose helpers this script shares.
    sys.path.insert(0, str(REPO))
    from bench.report import write_section
    from tests.mariadb import throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    only_storage = sys.argv[1:] == ["storage"]
    measure: Callable[[str], Any] = storage_cost if only_storage else measure_all
    given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
    if given:
        results = measure(given)
    else:
        with throwaway_mariadb() as url:
            results = measure(url)
    if only_storage:
        print(json.dumps(results))
    else:
        write_section("Intake", report(results), "python bench/intake_bench.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
