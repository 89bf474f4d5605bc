"""Status page benchmark: with 10,000 jobs in MariaDB, the jobs page and /api/jobs latency from a
client over loopback (waitress), the time from a progress write to an SSE client seeing it, and
both again with 50 SSE clients connected. Results go to the "Status page" section of
docs/benchmarks.md.

    python bench/status_bench.py      (from the repository's folder)

Uses a throwaway MariaDB, or a database of its own on the server VIDGEN_TEST_DATABASE_URL names.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
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


def seed(database: Database) -> None:
    """10,000 jobs over 100 projects, most finished, some failed, a few live."""
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
            _job_row(n, projects[n % PROJECTS].id, clips[n % PROJECTS].id, start)
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


def _job_row(n: int, project_id: str, clip_id: str, start: datetime) -> dict[str, Any]:
    status = "completed" if n % 10 else "failed"
    if n >= JOBS - 30:
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


def _settings(root: Path, url: str, port: int) -> Settings:
    from bench.report import bench_settings  # the repository is on sys.path only from main()

    return bench_settings(root, url, status={"port": port, "threads": THREADS})


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


def main() -> int:
    # Run as a script, this folder is first on sys.path; the repository root holds bench/ and
    # tests/ (not installed), whose helpers this script shares.
    sys.path.insert(0, str(REPO))
    from bench.report import write_section
    from tests.mariadb import own_database, throwaway_mariadb

    logging.basicConfig(level=logging.WARNING)
    given = os.environ.get("VIDGEN_TEST_DATABASE_URL")
    if given:
        results = measure_all(own_database(given, "status_bench"))
    else:
        with throwaway_mariadb() as url:
            results = measure_all(url)
    body = report(results)
    print(body)
    write_section("Status page", body, "python bench/status_bench.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
