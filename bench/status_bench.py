"""Status page benchmark: with 10,000 jobs in MariaDB, the jobs page and /api/jobs latency from a
client over loopback (waitress), the time from a progress write to an SSE client seeing it, and
both again with 50 SSE clients connected. Then a crowd: 200 EventSource-like clients (in a
process of their own, reconnecting as a browser does) on the default 16 threads, with 500 and
2,000 live jobs: the pages' latency, the first event message's size, the server's memory.
Results go to the "Status page" and "Status page, 200 clients" sections of docs/benchmarks.md.

    python bench/status_bench.py           (from the repository's folder)
    python bench/status_bench.py --crowd   (the crowd alone)

Uses a throwaway MariaDB, or a database of its own on the server VIDGEN_TEST_DATABASE_URL names.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from vidgen.config import Settings
from vidgen.db.claims import claim_next
from vidgen.db.jobs import report_progress
from vidgen.db.models import Base, Clip, Job, Project, RunsOn
from vidgen.db.session import Database, open_database, upgrade
from vidgen.specs import ClipSpec, ExportRequest, ExportSpec, GenerateRequest, GenerationMode

REPO = Path(__file__).resolve().parent.parent
JOBS = 10_000
PROJECTS = 100
REQUESTS = 300
WRITES = 40
SSE_CLIENTS = 50
THREADS = 64  # waitress threads: each SSE client holds one (see docs/status.md)
PATHS = ["/", "/?page=100", "/api/jobs", "/api/jobs?page=150"]
GOAL_PAGE_P99_MS = 100.0
GOAL_SSE_MS = 1000.0
CROWD = 200
CROWD_LIVE = (500, 2000)
CROWD_THREADS = 16  # status.threads' default
CROWD_PATHS = ["/", "/api/jobs"]


def seed(database: Database, live: int = 30) -> None:
    """10,000 jobs over 100 projects, most finished, some failed, the newest ``live`` queued."""
    with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    start = datetime.now(UTC) - timedelta(days=30)
    with database.session() as session:
        projects = [
            Project(
                project_name=f"project{n}",
                display_name=f"Project {n}",
                resolution="512x512",
                frame_rate=8,
            )
            for n in range(PROJECTS)
        ]
        session.add_all(projects)
        session.flush()
        clips = [
            Clip(
                project_id=p.id,
                clip_name="clip1",
                order_index=0,
                generation_mode="textToVideo",
                prompt="a red fox running through snow",
                settings_hash="0" * 64,
            )
            for p in projects
        ]
        session.add_all(clips)
        session.flush()
        rows = [
            _job_row(n, projects[n % PROJECTS].id, clips[n % PROJECTS].id, start, live)
            for n in range(JOBS)
        ]
        for first in range(0, JOBS, 1000):
            session.execute(insert(Job), rows[first : first + 1000])


def _request(n: int) -> dict[str, Any]:
    """A job's request as intake stores it: every fourth job an export, the others clips."""
    if n % 4 == 0:
        return ExportRequest(ExportSpec(), "outbox", 512, 512, 8).to_json()
    clip = ClipSpec("clip", GenerationMode.TEXT_TO_VIDEO, "a red fox running through snow", seed=n)
    return GenerateRequest(clip).to_json()


def _job_row(n: int, project_id: str, clip_id: str, start: datetime, live: int) -> dict[str, Any]:
    status = "completed" if n % 10 else "failed"
    if n >= JOBS - live:
        status = "queued"
    created = start + timedelta(seconds=n * 240)
    return {
        "project_id": project_id,
        "job_type": "generate" if n % 4 else "export",
        "runs_on": RunsOn.COMFYUI,
        "input_clip_ids": [clip_id],
        "job_settings": _request(n),
        "depends_on": [],
        "progress_percent": 100.0 if status == "completed" else 0.0,
        "current_stage": "done" if status == "completed" else "queued",
        "job_status": status,
        "error_message": "ComfyUI ran out of GPU memory" if status == "failed" else None,
        "created_at": created,
        "updated_at": created + timedelta(seconds=60),
    }


def _settings(root: Path, url: str, port: int, threads: int = THREADS) -> Settings:
    from bench.report import bench_settings  # the repository is on sys.path only from main()

    return bench_settings(root, url, status={"port": port, "threads": threads})


@contextmanager
def served(settings: Settings, database: Database) -> Iterator[None]:
    from status import serve

    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(settings, database, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", settings.status.port, timeout=1).connect()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


def latencies_ms(port: int, path: str, count: int) -> list[float]:
    """``count`` GETs of ``path`` on one keep-alive connection, each timed to its last byte."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    found = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        found.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (path, response.status)
    connection.close()
    return found


@dataclass
class SSEClient:
    """One EventSource-like reader in a thread, noting when each (job, percent) arrived."""

    port: int
    seen: dict[tuple[str, float], float] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        self.ready.set()
        while line := response.fp.readline():
            if line.startswith(b"data: "):
                job = json.loads(line[6:])
                if "id" not in job:  # a counts event
                    continue
                with self.changed:
                    self.seen[(job["id"], job["progressPercent"])] = time.perf_counter()
                    self.changed.notify_all()

    def wait_for(self, key: tuple[str, float], timeout_s: float) -> float | None:
        deadline = time.perf_counter() + timeout_s
        with self.changed:
            while key not in self.seen:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)
            return self.seen[key]


def sse_latencies_ms(database: Database, clients: list[SSEClient], job_id: str) -> list[float]:
    """Write progress WRITES times; for each, the slowest client's delay after the commit."""
    found = []
    for step in range(WRITES):
        percent = round(1.0 + step * 2.4, 1)
        report_progress(database, job_id, "bench", percent, f"step {step}")
        committed = time.perf_counter()
        arrivals = [c.wait_for((job_id, percent), 5.0) for c in clients]
        found.append(max((a or committed + 5.0) - committed for a in arrivals) * 1000)
        time.sleep(0.15)  # spaced like a sampler's steps, not a burst
    return found


def pages(port: int) -> dict[str, list[float]]:
    return {path: latencies_ms(port, path, REQUESTS) for path in PATHS}


def measure_all(url: str) -> dict[str, Any]:
    database = open_database(url)
    upgrade(database)
    seed(database)
    job = claim_next(database, "bench", RunsOn.COMFYUI, lease_seconds=3600, max_attempts=5)
    assert job is not None
    results: dict[str, Any] = {"plan": explain(database)}
    with tempfile.TemporaryDirectory() as root:
        from tests.mariadb import free_port

        settings = _settings(Path(root), url, free_port())
        with served(settings, database):
            port = settings.status.port
            results["pages"] = pages(port)
            one = SSEClient(port)
            one.start()
            one.ready.wait(10)
            results["sse_one"] = sse_latencies_ms(database, [one], job.id)
            many = [SSEClient(port) for _ in range(SSE_CLIENTS)]
            for client in many:
                client.start()
            for client in many:
                client.ready.wait(10)
            results["pages_with_clients"] = pages(port)
            results["sse_many"] = sse_latencies_ms(database, many, job.id)
    database.dispose()
    return results


def explain(database: Database) -> str:
    """How MariaDB finds a page of job ids (which index, whether it sorts)."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("EXPLAIN SELECT id FROM job ORDER BY createdAt DESC, id DESC LIMIT 50 OFFSET 7450")
        ).mappings()
        return "; ".join(f"{r['table']}: key={r['key']}, {r['Extra'] or 'no extra'}" for r in rows)


def report(results: dict[str, Any]) -> str:
    from bench.report import percentile

    def row(name: str, values: list[float], goal: str) -> str:
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return f"| {name} | {len(values)} | {p50:.1f} | {p99:.1f} | {max(values):.1f} | {goal} |"

    lines = [
        f"{JOBS:,} jobs in {PROJECTS} projects in MariaDB; `vidgen status` (waitress, "
        f"{THREADS} threads) on loopback; each request timed by the client to its last byte "
        "on one keep-alive connection. SSE: the time from a progress write's commit to the "
        "slowest listening client reading it.",
        "",
        "| measure | n | p50 ms | p99 ms | max ms | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path, values in results["pages"].items():
        lines.append(row(f"GET {path}", values, f"p99 < {GOAL_PAGE_P99_MS:.0f} ms"))
    lines.append(row("SSE, 1 client: write → seen", results["sse_one"], "< 1 s"))
    for path, values in results["pages_with_clients"].items():
        lines.append(
            row(
                f"GET {path}, {SSE_CLIENTS} SSE clients connected",
                values,
                f"p99 < {GOAL_PAGE_P99_MS:.0f} ms",
            )
        )
    lines.append(
        row(f"SSE, {SSE_CLIENTS} clients: write → seen by all", results["sse_many"], "< 1 s")
    )
    lines += ["", f"Ids of page 150, MariaDB's plan: {results['plan']}."]
    return "\n".join(lines)


def crowd(port: int, clients: int) -> None:
    """``clients`` EventSource-like readers (run as ``--crowd-clients``): each reads a stream to
    its end, waits the ``retry:`` it was given and comes back, until SIGTERM; then prints how
    many streams were served and how many turned away."""
    tally = {"streams": 0, "turned_away": 0, "errors": 0}
    lock = threading.Lock()

    def reader() -> None:
        while True:
            retry_ms, events = 2000, 0
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("GET", "/api/events")
                response = connection.getresponse()
                while line := response.readline():  # to the body's end, as a browser reads
                    if line.startswith(b"retry: "):
                        retry_ms = int(line[7:])
                    events += line.startswith(b"event: ")
                connection.close()
                kind = "streams" if events else "turned_away"
            except OSError:
                kind = "errors"
            with lock:
                tally[kind] += 1
            time.sleep(retry_ms / 1000)

    for _ in range(clients):
        threading.Thread(target=reader, daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    with lock:
        print(json.dumps(tally), flush=True)


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def first_message_bytes(database: Database) -> int:
    """The size of what a new SSE client is sent first."""
    from status.events import Subscription, initial_state, stream

    body = stream(Subscription(), initial_state(database, None), 1.0, lambda: False)
    return len(next(body).encode())


def measure_crowd(url: str) -> dict[str, Any]:
    database = open_database(url)
    upgrade(database)
    results: dict[str, Any] = {"rss_start": rss_mb()[0]}
    for live in CROWD_LIVE:
        seed(database, live)
        found: dict[str, Any] = {"first_bytes": first_message_bytes(database)}
        with tempfile.TemporaryDirectory() as root:
            from tests.mariadb import free_port

            settings = _settings(Path(root), url, free_port(), CROWD_THREADS)
            with served(settings, database):
                port = settings.status.port
                clients = subprocess.Popen(
                    [sys.executable, __file__, "--crowd-clients", str(port), str(CROWD)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(5)  # every client has come once, some twice
                found["pages"] = {path: latencies_ms(port, path, REQUESTS) for path in CROWD_PATHS}
                clients.send_signal(signal.SIGTERM)
                out, _ = clients.communicate(timeout=30)
                found["tally"] = json.loads(out)
        found["rss"] = rss_mb()
        results[live] = found
    database.dispose()
    return results


def report_crowd(results: dict[str, Any]) -> str:
    from bench.report import percentile

    lines = [
        f"{JOBS:,} jobs in MariaDB, of them 500 or 2,000 queued; `vidgen status` with its default "
        f"{CROWD_THREADS} threads; {CROWD} EventSource-like clients in a process of their own, "
        "each reconnecting after the `retry:` it was given, as a browser does. Each request "
        "timed by the client to its last byte, on one keep-alive connection, while the crowd "
        "comes and goes. Before issue 10, with 200 clients, `GET /` took p50 2.5 s at 500 live "
        "jobs and 24.8 s at 2,000, and memory rose to about 400 MB and stayed.",
        "",
        "| live jobs | measure | n | p50 ms | p99 ms | max ms | goal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for live in CROWD_LIVE:
        for path, values in results[live]["pages"].items():
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            lines.append(
                f"| {live:,} | GET {path} | {len(values)} | {p50:.1f} | {p99:.1f} "
                f"| {max(values):.1f} | p99 < {GOAL_PAGE_P99_MS:.0f} ms |"
            )
    lines += [
        "",
        "| live jobs | first event message | answers of `retry:` alone (clients turned away) "
        "in the run | resident memory after, now / peak |",
        "| --- | --- | --- | --- |",
    ]
    for live in CROWD_LIVE:
        found = results[live]
        tally, (now, peak) = found["tally"], found["rss"]
        lines.append(
            f"| {live:,} | {found['first_bytes'] / 1024:.1f} KiB "
            f"| {tally['turned_away']} (connection errors: {tally['errors']}) "
            f"| {now:.0f} / {peak:.0f} MB |"
        )
    lines += [
        "",
        f"Resident memory of the benchmark process at its start: {results['rss_start']:.0f} MB.",
    ]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--crowd-clients"]:
        crowd(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    # Run as a script, this folder is first on sys.path; the repository root holds bench/ and
    # tests/ (not installed), whose helpers this script shares.
    sys.path.insert(0, str(REPO))
    from bench.report import write_section
    from tests.mariadb import own_database, throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    crowd_only = sys.argv[1:2] == ["--crowd"]
    given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
    with throwaway_mariadb() if not given else _given(own_database(given, "status_bench")) as url:
        if not crowd_only:
            body = report(measure_all(url))
            print(body)
            write_section("Status page", body, "python bench/status_bench.py")
        body = report_crowd(measure_crowd(url))
        print(body)
        write_section("Status page, 200 clients", body, "python bench/status_bench.py --crowd")
    return 0


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    sys.exit(main())
