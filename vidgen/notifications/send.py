"""Sending one message: a JSON POST to a webhook, or through Apprise. The only HTTP of vidgen
outside the ComfyUI client; every failure is a ``NotificationError`` with the reason in words."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from vidgen.errors import NotificationError

log = logging.getLogger(__name__)


def post_webhook(url: str, body: Mapping[str, Any], timeout_seconds: float, where: str) -> None:
    """POST ``body`` as JSON; any 2xx answer is delivered.

    Raises:
        NotificationError: no answer in time, no connection, or another status.
    """
    try:
        response = httpx.post(
            url, json=dict(body), timeout=timeout_seconds, headers={"User-Agent": "vidgen"}
        )
    except httpx.TimeoutException as exc:
        raise NotificationError(f"{where} did not answer within {timeout_seconds:g} s") from exc
    except httpx.HTTPError as exc:
        raise NotificationError(f"cannot reach {where}: {exc}") from exc
    if not response.is_success:
        raise NotificationError(f"{where} answered HTTP {response.status_code}")


def send_apprise(url: str, title: str, body: str) -> None:
    """Send through Apprise (its own timeouts: ``?cto=`` and ``?rto=`` in the URL).

    Raises:
        NotificationError: Apprise does not know the URL, or the service did not take it.
    """
    # A large package, loaded only where an Apprise URL is set.
    import apprise

    service = apprise.Apprise()
    if not service.add(url):
        raise NotificationError("Apprise does not understand this URL (see its list of services)")
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        delivered = service.notify(title=title, body=body)
    if not delivered:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split(" - ", 2)[-1] if lines else "the service did not take it"
        raise NotificationError(f"Apprise: {reason}")
