"""Intake: a complete manifest file becomes recorded work, or a rejection a person can read.

read + validate (in place, read-only) → claim (rename into ``.vidgen/processing/``) → either
reject (error file, then move to ``rejected/``) or accept (copy references into storage, record
everything in one transaction, write the resolved manifest, move the manifest into storage).

The Manifest row is the commit point. A crash before it leaves the claimed file to be processed
again by ``recover()``; a crash after it leaves only the moves to finish. So every dropped file
ends either waiting in the inbox, or recorded and moved (or rejected), never both, never neither.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from vidgen.config import InboxSettings, Settings
from vidgen.db.manifests import (
    find_cancel_target,
    manifest_recorded,
    record_cancel,
    record_manifest,
    stored_path_of,
)
from vidgen.db.outbox import record_rejection
from vidgen.db.session import Database
from vidgen.errors import Problem
from vidgen.naming import FileType, allocate_path, project_name
from vidgen.shown_paths import ShownPaths
from watcher import files
from watcher.manifest import CancelRequest, Catalogue, Manifest, ValidationResult, validate_bytes
from watcher.plan import Placement, StoredReference, build_record, resolved_text
from watcher.yaml_lines import MAX_BYTES

log = logging.getLogger(__name__)

# The steps after which ``on_step`` is called; a test kills the process at each one in turn.
ACCEPT_STEPS = ("claimed", "refs-copied", "recorded", "resolved-written", "stored")
REJECT_STEPS = ("claimed", "error-written", "rejected")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    UNCHANGED = "unchanged"  # recorded; nothing to do, nothing queued
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    WAITING = "waiting"  # left in the inbox: its files are not there yet, or another process has it
    GONE = "gone"  # taken by another watcher, or removed before it could be read


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: Outcome
    source: Path
    message: str = ""
    project_name: str | None = None
    manifest_id: str | None = None
    stored_path: Path | None = None


@dataclass(frozen=True, slots=True)
class _Claim:
    """A claimed file and what is known of it."""

    path: Path  # inside processing/
    manifest_id: str
    original: str  # the name it was dropped under
    inbox: InboxSettings
    raw: bytes

    @property
    def source(self) -> Path:
        return self.inbox.path / self.original


class Intake:
    """Turns complete manifest files into recorded projects and jobs; one file at a time."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        catalogue: Catalogue | None = None,
        *,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.catalogue = catalogue
        self._on_step = on_step
        self._first_seen: dict[Path, float] = {}
        self._shown = ShownPaths.from_settings(settings)

    def process(self, path: Path) -> IntakeResult:
        """Take ``path`` (a manifest at the top of an inbox) if it is ready, else leave it."""
        inbox = self.inbox_of(path)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return IntakeResult(Outcome.GONE, path, "no longer there")
        with handle:
            if not files.try_lock(handle):
                return IntakeResult(Outcome.WAITING, path, "another process is reading it")
            raw = handle.read(MAX_BYTES + 1)
            result = self._validate(raw, path, inbox, path.name)
            if self._should_wait(path, result, inbox):
                return IntakeResult(Outcome.WAITING, path, "waiting for the files it names")
            manifest_id = str(uuid.uuid4())
            claimed = files.processing_dir(inbox.path) / files.claim_name(manifest_id, path.name)
            try:
                files.ensure_folder(claimed.parent)
                path.rename(claimed)
            except FileNotFoundError:
                return IntakeResult(Outcome.GONE, path, "taken by another watcher")
            self._first_seen.pop(path, None)
            self._step("claimed")
            claim = _Claim(claimed, manifest_id, path.name, inbox, raw)
            return self._settle(claim, result)

    def recover(self) -> list[IntakeResult]:
        """Finish or redo whatever a crash left in any inbox's processing folder."""
        results: list[IntakeResult] = []
        for inbox in self.settings.inboxes:
            try:
                claimed = sorted(files.processing_dir(inbox.path).iterdir())
            except OSError:
                continue  # nothing claimed yet, or the share is away: nothing to do now
            for path in claimed:
                parts = files.split_claim(path.name)
                if parts is not None and path.is_file():
                    result = self._recover_one(path, parts, inbox)
                    if result is not None:
                        results.append(result)
        return results

    def inbox_of(self, path: Path) -> InboxSettings:
        """The configured inbox ``path`` lies in; a folder outside them is its own inbox."""
        for inbox in self.settings.inboxes:
            if inbox.path == path.parent or _same_folder(inbox.path, path.parent):
                return inbox
        return InboxSettings(path=path.parent)

    def _recover_one(
        self, path: Path, parts: tuple[str, str], inbox: InboxSettings
    ) -> IntakeResult | None:
        manifest_id, original = parts
        with path.open("rb") as handle:
            if not files.try_lock(handle):
                return None  # a live process is working on it
            claim = _Claim(path, manifest_id, original, inbox, handle.read(MAX_BYTES + 1))
            log.info("recovering %s (claimed as %s)", claim.source, path.name)
            if manifest_recorded(self.database, manifest_id):
                stored, resolved = stored_path_of(self.database, manifest_id)
                return self._store(claim, Path(stored or ""), resolved, Outcome.ACCEPTED)
            return self._settle(claim, self._validate(claim.raw, path, inbox, original))

    def _validate(
        self, raw: bytes, path: Path, inbox: InboxSettings, original: str
    ) -> ValidationResult:
        return validate_bytes(
            raw,
            self.settings,
            self.catalogue,
            inbox=inbox.path,
            file_name=original,
            path=path,
        )

    def _should_wait(self, path: Path, result: ValidationResult, inbox: InboxSettings) -> bool:
        """Wait (up to the grace, from first sight) for named files missing or still arriving."""
        now = time.monotonic()
        arriving = any(_younger_than(p, inbox.stable_seconds) for p in result.references)
        if not (result.only_missing_files or arriving):
            self._first_seen.pop(path, None)
            return False
        first = self._first_seen.setdefault(path, now)
        return now - first < self.settings.intake.missing_files_grace_seconds

    def _settle(self, claim: _Claim, result: ValidationResult) -> IntakeResult:
        if isinstance(result.manifest, Manifest):
            return self._accept(claim, result.manifest)
        if isinstance(result.manifest, CancelRequest):
            return self._cancel(claim, result.manifest)
        return self._reject(claim, result.format(claim.original))

    def _reject(self, claim: _Claim, problems: str) -> IntakeResult:
        # The error file is read by whoever dropped the manifest: no folder of this machine.
        error_text = self._shown.text(problems)
        record_rejection(self.database, claim.manifest_id, claim.original, error_text)
        attempt = 1
        while True:
            target = files.rejected_target(claim.inbox.path, claim.original, attempt)
            if not target.exists():
                files.write_atomically(
                    target.with_name(target.name + files.ERROR_SUFFIX), error_text + "\n"
                )
                self._step("error-written")
                if files.move_no_clobber(claim.path, target):
                    break
            attempt += 1
        self._step("rejected")
        count = error_text.count("\n") + 1
        log.warning("rejected %s (%d problem(s)); see %s.error.txt", claim.source, count, target)
        return IntakeResult(Outcome.REJECTED, claim.source, error_text, manifest_id=None)

    def _accept(self, claim: _Claim, manifest: Manifest) -> IntakeResult:
        stored_refs = self._store_references(manifest)
        self._step("refs-copied")
        folder = self._manifests_folder(manifest.project_name)
        placement = Placement(
            manifest_id=claim.manifest_id,
            source_path=claim.source,
            stored_folder=folder,
            stored_extension=_extension(claim.original),
            content_sha256=files.sha256_bytes(claim.raw),
            outbox=self.settings.outbox_for(claim.inbox.path),
        )
        record = build_record(manifest, placement, stored_refs)
        outcome = record_manifest(self.database, record, _draw_seed)
        stored_path = Path(outcome.stored_path)
        self._step("recorded")
        for note in manifest.notes:
            log.info("%s: %s", claim.original, note)
        if outcome.export_job_id is None:
            log.info(
                "%s: nothing changed in project %s; recorded, nothing queued",
                claim.source,
                manifest.project_name,
            )
            return self._store(claim, stored_path, outcome.resolved, Outcome.UNCHANGED)
        log.info(
            "accepted %s: project %s, %d clip(s), %d to generate, export job %s",
            claim.source,
            manifest.project_name,
            len(outcome.clip_ids),
            len(outcome.generate_job_ids),
            outcome.export_job_id,
        )
        return self._store(claim, stored_path, outcome.resolved, Outcome.ACCEPTED)

    def _cancel(self, claim: _Claim, request: CancelRequest) -> IntakeResult:
        target = find_cancel_target(self.database, request.target, project_name(request.target))
        if target is None:
            message = f"no project or job named '{request.target}'"
            problem = Problem("cancel", request.line, message)
            return self._reject(claim, problem.format(claim.original))
        stored_path = self._allocate_manifest_path(target.project_name, claim.original)
        self._step("named")
        count = record_cancel(
            self.database,
            target,
            manifest_id=claim.manifest_id,
            source_path=str(claim.source),
            stored_path=str(stored_path),
            content_hash=files.sha256_bytes(claim.raw),
        )
        self._step("recorded")
        log.info("cancelled project %s (%d job(s)) by %s", target.project_name, count, claim.source)
        resolved = {"cancel": target.project_name}
        return self._store(claim, stored_path, resolved, Outcome.CANCELLED)

    def _store(
        self, claim: _Claim, stored_path: Path, resolved: dict[str, Any], outcome: Outcome
    ) -> IntakeResult:
        """The steps after the commit point; redone as they are by ``recover()``."""
        resolved_path = stored_path.with_name(stored_path.stem + ".resolved.json")
        files.write_atomically(resolved_path, resolved_text(resolved))
        self._step("resolved-written")
        files.move_out(claim.path, stored_path)
        self._step("stored")
        name = str(resolved.get("projectName") or resolved.get("cancel") or "")
        return IntakeResult(outcome, claim.source, "", name, claim.manifest_id, stored_path)

    def _manifests_folder(self, name: str) -> Path:
        folder = self.settings.storage / name / "manifests"
        files.ensure_folder(folder)
        return folder

    def _allocate_manifest_path(self, name: str, original: str) -> Path:
        folder = self._manifests_folder(name)
        return allocate_path(self.database, folder, name, FileType.MANIFEST, _extension(original))

    def _store_references(self, manifest: Manifest) -> dict[Path, StoredReference]:
        """Copy each referenced file into storage once (a copy with the same bytes is reused)."""
        folder = self.settings.storage / manifest.project_name / "refs"
        stored: dict[Path, StoredReference] = {}
        for clip in manifest.clips:
            if clip.source is None or clip.source in stored:
                continue
            digest = files.sha256_file(clip.source)
            size = clip.source.stat().st_size
            target = files.find_same_content(folder, size, digest)
            if target is None:
                folder.mkdir(parents=True, exist_ok=True)
                extension = clip.source.suffix.lstrip(".").lower() or "bin"
                name = manifest.project_name
                target = allocate_path(self.database, folder, name, FileType.REF, extension)
                files.copy_atomically(clip.source, target)
            stored[clip.source] = StoredReference(target, digest)
        return stored

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)


def _extension(original: str) -> str:
    return Path(original).suffix.lstrip(".").lower() or "yaml"


def _draw_seed() -> int:
    return secrets.randbits(64)


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def _same_folder(first: Path, second: Path) -> bool:
    try:
        return first.samefile(second)
    except OSError:
        return False
