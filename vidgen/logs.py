"""Logging set up once: readable lines on the console and in storage/logs/vidgen.log (rotated),
each record stamped with the job, stage and worker it belongs to."""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
from collections.abc import Iterator
from contextlib import contextmanager

from vidgen.config import Settings

job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("jobId", default="-")
stage_var: contextvars.ContextVar[str] = contextvars.ContextVar("stage", default="-")
worker_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("workerId", default="-")

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(workerId)s %(jobId)s %(stage)s] %(message)s"


class ContextFilter(logging.Filter):
    """Stamps jobId, stage and workerId from the context variables on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.jobId = job_id_var.get()
        record.stage = stage_var.get()
        record.workerId = worker_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "jobId": getattr(record, "jobId", "-"),
            "stage": getattr(record, "stage", "-"),
            "workerId": getattr(record, "workerId", "-"),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.logging.level)
    context = ContextFilter()
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(_FORMAT))
    console.addFilter(context)
    root.addHandler(console)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    to_file = logging.handlers.RotatingFileHandler(
        settings.logs_dir / "vidgen.log", maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    to_file.setFormatter(JsonFormatter() if settings.logging.json else logging.Formatter(_FORMAT))
    to_file.addFilter(context)
    root.addHandler(to_file)
    for noisy in ("httpx", "httpcore", "websockets", "watchdog", "alembic", "waitress"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def job_context(job_id: str, stage: str = "-") -> Iterator[None]:
    job_token = job_id_var.set(job_id)
    stage_token = stage_var.set(stage)
    try:
        yield
    finally:
        stage_var.reset(stage_token)
        job_id_var.reset(job_token)
