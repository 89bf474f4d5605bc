"""The configured notification targets, each with the key its deliveries are stored under.

URLs may hold tokens (a Discord webhook's path, a Telegram bot's), so the database stores a hash
of the URL, and pages and logs name a target by its place in config.yaml and its host only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from vidgen.config import NotificationSettings, NotifyTarget


class TargetKind(StrEnum):
    WEBHOOK = "webhooks"
    APPRISE = "apprise"


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    index: int
    url: str
    events: frozenset[str]

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.kind.value} {self.url}".encode()).hexdigest()

    @property
    def name(self) -> str:
        """``webhooks[0]``: where it is in config.yaml."""
        return f"{self.kind.value}[{self.index}]"

    @property
    def where(self) -> str:
        """What may be shown of the URL: a webhook's scheme and host, an Apprise URL's scheme
        (Apprise puts tokens in the host part too: ``tgram://BOT_TOKEN/CHAT``)."""
        parts = urlsplit(self.url)
        if self.kind is TargetKind.APPRISE or not parts.hostname:
            return f"{parts.scheme}://…"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{parts.hostname}{port}"


def targets_of(settings: NotificationSettings) -> tuple[Target, ...]:
    def of(kind: TargetKind, rows: tuple[NotifyTarget, ...]) -> list[Target]:
        return [Target(kind, i, row.url, frozenset(row.events)) for i, row in enumerate(rows)]

    return (*of(TargetKind.WEBHOOK, settings.webhooks), *of(TargetKind.APPRISE, settings.apprise))


def routes(targets: tuple[Target, ...]) -> Mapping[str, list[str]]:
    """Event kind → the keys of the targets that want it."""
    found: dict[str, list[str]] = {}
    for target in targets:
        for kind in target.events:
            found.setdefault(kind, []).append(target.key)
    return found
