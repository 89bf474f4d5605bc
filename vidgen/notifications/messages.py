"""What is sent for an event: the webhook's JSON body, and a title and text for Apprise."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from vidgen.config import Settings

_LOOPBACK_ANY = ("0.0.0.0", "::", "")  # noqa: S104 (names, compared with, not bound)


def status_base(settings: Settings) -> str:
    """The status page's address as a person elsewhere reaches it."""
    if settings.notifications.status_url:
        return settings.notifications.status_url.rstrip("/")
    host = settings.status.host
    if host in _LOOPBACK_ANY:
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.status.port}"


def status_url(base: str, kind: str, payload: Mapping[str, Any]) -> str:
    """The page that says more: the job's, the rejected manifests, or the health report."""
    if payload.get("jobId") and kind in ("completed", "failed"):
        return f"{base}/jobs/{payload['jobId']}"
    return {"rejected": f"{base}/rejected", "attention": f"{base}/health"}.get(kind, f"{base}/")


def webhook_body(kind: str, payload: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The JSON a webhook gets; every key is always there (null or [] when it does not apply)."""
    return {
        "event": kind,
        "projectName": payload.get("projectName"),
        "displayName": payload.get("displayName"),
        "jobId": payload.get("jobId"),
        "outputs": list(payload.get("outputs") or []),
        "error": payload.get("error"),
        "statusUrl": status_url(base, kind, payload),
    }


def apprise_text(kind: str, payload: Mapping[str, Any], base: str) -> tuple[str, str]:
    """A title and a few lines for chat and e-mail services."""
    name = payload.get("displayName") or payload.get("projectName") or "vidgen"
    outputs = ", ".join(payload.get("outputs") or [])
    error = payload.get("error") or ""
    title, text = {
        "completed": (f"{name}: finished", f"In the outbox: {outputs}."),
        "failed": (f"{name}: failed", error),
        "rejected": (f"{name}: manifest rejected", error),
        "queueEmpty": ("vidgen: all done", "Nothing is queued or running any more."),
        "attention": ("vidgen needs attention", error),
        "test": ("vidgen: test", "A test notification from vidgen notify --test."),
    }.get(kind, (f"vidgen: {kind}", error))
    return title, f"{text}\n{status_url(base, kind, payload)}".strip()
