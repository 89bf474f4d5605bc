"""Intake: a complete manifest file becomes recorded work, or a rejection a person can read.

read + validate (in place, read-only) → claim (rename into ``.vidgen/processing/``) → either
reject (error file, then move to ``rejected/``) or accept (copy the files it names into a
staging folder and check the copies, move them into storage, record everything in one
transaction, write the resolved manifest, store the manifest).

The Manifest row is the commit point. A crash before it leaves the claimed file to be processed
again by ``recover()``; a crash after it leaves only the moves to finish. Whatever fails after
the claim is said in the log with the file's name and either tried again later (``RETRY``: the
database away, a full disk) or ends as a rejection with an error file. So every dropped file
ends either waiting in the inbox, or recorded and moved (or rejected), never both, never neither.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from vidgen.config import InboxSettings, Settings
from vidgen.db.manifests import (
    manifest_recorded,
    stored_path_of,
)
from vidgen.db.session import Database
from vidgen.errors import Problem
from vidgen.safe_files import Refused, open_file, shown_name
from watcher import files
from watcher.failures import internal_error, is_passing, reason_of
from watcher.manifest import (
    CancelRequest,
    Catalogue,
    Manifest,
    PriorityRequest,
    ValidationResult,
    validate_bytes,
)
from watcher.record import Claim, IntakeResult, Outcome, Recorder
from watcher.references import ReferenceReader
from watcher.yaml_lines import MAX_BYTES

log = logging.getLogger(__name__)

# The steps after which ``on_step`` is called; a test kills the process at each one in turn.
ACCEPT_STEPS = ("claimed", "staged", "refs-copied", "recorded", "resolved-written", "stored")
REJECT_STEPS = ("claimed", "error-written", "rejected")
STAGING = ".intake"  # storage/.intake/<manifestId>/: copies of a claim's files being checked


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
        self._paused: dict[Path, float] = {}  # inbox → when its outage began
        self._lock = threading.Lock()
        self._recorder = Recorder(settings, database, self._step)

    def process(self, path: Path) -> IntakeResult:
        """Take ``path`` (a manifest at the top of an inbox) if it is ready, else leave it.

        Raises:
            OSError: the inbox cannot be read (its share away): nothing was claimed.
        """
        inbox = self.inbox_of(path)
        try:
            opened = open_file(path)
        except Refused as refused:
            if refused.missing:
                return IntakeResult(Outcome.GONE, path, "no longer there")
            return self._refuse(path, inbox, refused.reason)
        with os.fdopen(opened.fd, "rb") as handle:
            if not files.try_lock(handle):
                return IntakeResult(Outcome.WAITING, path, "another process is reading it")
            raw = handle.read(MAX_BYTES + 1)
            first = self._validate(raw, path, inbox, path.name, None)
            if self._should_wait(path, first, inbox):
                return IntakeResult(Outcome.WAITING, path, "waiting for the files it names")
            claim = self._claim(path, inbox, raw)
            if claim is None:
                return IntakeResult(Outcome.GONE, path, "taken by another watcher")
            return self._guarded(claim, lambda: self._settle(claim, first))

    def resume(self, claimed: Path) -> IntakeResult:
        """Finish (or redo) a claimed file: one that met a passing failure, or a crash."""
        parts = files.split_claim(claimed.name)
        if parts is None:
            return IntakeResult(Outcome.GONE, claimed, "not a claimed manifest")
        inbox = self._inbox_at(claimed.parents[2])
        result = self._recover_one(claimed, parts, inbox)
        return result or IntakeResult(Outcome.WAITING, claimed, "another process is taking it")

    def recover(self) -> list[IntakeResult]:
        """Finish or redo whatever a crash left in any inbox's processing folder; a file that
        cannot be finished now is said in the log and left for ``resume`` (``RETRY``)."""
        results: list[IntakeResult] = []
        for inbox in self.settings.inboxes:
            try:
                claimed = sorted(files.processing_dir(inbox.path).iterdir())
            except OSError:
                continue  # nothing claimed yet, or the share is away: nothing to do now
            for path in claimed:
                parts = files.split_claim(path.name)
                if parts is None or (path.is_dir() and not path.is_symlink()):
                    continue
                try:
                    result = self._recover_one(path, parts, inbox)
                except OSError as exc:
                    log.warning(
                        "cannot recover %s now (%s); tried again later", shown_name(path), exc
                    )
                    result = IntakeResult(Outcome.RETRY, path, str(exc), claimed=path)
                if result is not None:
                    results.append(result)
        return results

    def inbox_of(self, path: Path) -> InboxSettings:
        """The configured inbox ``path`` lies in; a folder outside them is its own inbox."""
        return self._inbox_at(path.parent)

    def grace_paused(self, inbox: Path) -> None:
        """The inbox is away: the time its manifests wait for their files stops counting."""
        with self._lock:
            self._paused.setdefault(inbox, time.monotonic())

    def grace_resumed(self, inbox: Path) -> None:
        """The inbox is back: its manifests' waiting time goes on from where it stopped."""
        with self._lock:
            began = self._paused.pop(inbox, None)
            if began is None:
                return
            away = time.monotonic() - began
            for path in self._first_seen:
                if path.parent == inbox:
                    self._first_seen[path] += away

    def _inbox_at(self, folder: Path) -> InboxSettings:
        for inbox in self.settings.inboxes:
            if inbox.path == folder or _same_folder(inbox.path, folder):
                return inbox
        return InboxSettings(path=folder)

    def _claim(self, path: Path, inbox: InboxSettings, raw: bytes) -> Claim | None:
        manifest_id = str(uuid.uuid4())
        claimed = files.processing_dir(inbox.path) / files.claim_name(manifest_id, path.name)
        try:
            files.ensure_folder(claimed.parent)
            path.rename(claimed)
        except FileNotFoundError:
            return None
        with self._lock:
            self._first_seen.pop(path, None)
        self._step("claimed")
        return Claim(claimed, manifest_id, path.name, inbox, raw)

    def _refuse(self, path: Path, inbox: InboxSettings, reason: str) -> IntakeResult:
        """A manifest vidgen may not read (a symbolic link, a pipe): claimed and rejected
        without opening it."""
        claim = self._claim(path, inbox, b"")
        if claim is None:
            return IntakeResult(Outcome.GONE, path, "taken by another watcher")
        text = Problem("", 1, f"{claim.shown} {reason}").format(claim.shown)
        return self._guarded(claim, lambda: self._recorder.reject(claim, text))

    def _recover_one(
        self, path: Path, parts: tuple[str, str], inbox: InboxSettings
    ) -> IntakeResult | None:
        manifest_id, original = parts
        try:
            opened = open_file(path)
        except Refused as refused:
            if refused.missing:
                return IntakeResult(Outcome.GONE, path, "no longer there")
            claim = Claim(path, manifest_id, original, inbox, b"")
            text = Problem("", 1, f"{claim.shown} {refused.reason}").format(claim.shown)
            return self._guarded(claim, lambda: self._recorder.reject(claim, text))
        with os.fdopen(opened.fd, "rb") as handle:
            if not files.try_lock(handle):
                return None  # a live process is working on it
            claim = Claim(path, manifest_id, original, inbox, handle.read(MAX_BYTES + 1))
            log.info("recovering %s (claimed as %s)", shown_name(claim.source), path.name)
            return self._guarded(claim, lambda: self._resume(claim))

    def _resume(self, claim: Claim) -> IntakeResult:
        if manifest_recorded(self.database, claim.manifest_id):
            stored, resolved = stored_path_of(self.database, claim.manifest_id)
            return self._recorder.store(claim, Path(stored or ""), resolved, Outcome.ACCEPTED)
        return self._settle(claim, None)

    def _guarded(self, claim: Claim, settle: Callable[[], IntakeResult]) -> IntakeResult:
        """The one catch of intake after a claim: nothing claimed is left without a word."""
        try:
            return settle()
        except Exception as exc:  # noqa: BLE001 (said in the log; retried or rejected)
            return self._failed(claim, exc)
        finally:
            shutil.rmtree(self._staging(claim), ignore_errors=True)

    def _failed(self, claim: Claim, exc: Exception) -> IntakeResult:
        if is_passing(exc, claim.inbox.path):
            log.warning(
                "%s cannot be taken yet (%s); it stays claimed and is tried again shortly",
                shown_name(claim.source),
                reason_of(exc),
            )
            return IntakeResult(Outcome.RETRY, claim.source, reason_of(exc), claimed=claim.path)
        log.error("taking %s failed; it is rejected", shown_name(claim.source), exc_info=exc)
        try:
            return self._recorder.reject(claim, internal_error(exc).format(claim.shown))
        except Exception as again:  # noqa: BLE001 (the rejection itself failed: later, then)
            log.warning("rejecting %s failed too (%s); tried again shortly", claim.shown, again)
            return IntakeResult(Outcome.RETRY, claim.source, str(again), claimed=claim.path)

    def _validate(
        self,
        raw: bytes,
        path: Path,
        inbox: InboxSettings,
        original: str,
        staging: Path | None,
    ) -> ValidationResult:
        """Every check of the manifest; its files are copied into ``staging`` when given.

        Raises:
            OSError: a file could not be read or copied (a share away, a full disk).
        """
        reader = ReferenceReader(inbox.path, self.settings.limits, staging)
        try:
            return validate_bytes(
                raw,
                self.settings,
                self.catalogue,
                file_name=shown_name(original),
                path=path,
                reader=reader,
                inbox=inbox,
            )
        except OSError:
            raise
        except Exception as exc:  # a manifest that breaks a check is rejected
            log.error("checking %s failed", shown_name(path), exc_info=exc)
            return ValidationResult(path, None, (internal_error(exc),))

    def _should_wait(self, path: Path, result: ValidationResult, inbox: InboxSettings) -> bool:
        """Wait (up to the grace, from first sight) for named files missing or still arriving."""
        now = time.monotonic()
        arriving = any(time.time() - r.mtime < inbox.stable_seconds for r in result.references)
        with self._lock:
            if not (result.only_missing_files or arriving):
                self._first_seen.pop(path, None)
                return False
            first = self._first_seen.setdefault(path, now)
        return now - first < self.settings.intake.missing_files_grace_seconds

    def _settle(self, claim: Claim, first: ValidationResult | None) -> IntakeResult:
        """``first``: the look before the claim, None after a crash. The files a manifest names
        are read again after the claim, into staging, and the copies are what is checked (as
        ``vidgen validate`` does, so both report the same problems)."""
        result = first
        if result is None or result.references:
            staging = self._staging(claim)
            shutil.rmtree(staging, ignore_errors=True)  # what a crash left there
            result = self._validate(claim.raw, claim.path, claim.inbox, claim.original, staging)
            self._step("staged")
        if isinstance(result.manifest, Manifest):
            return self._recorder.accept(claim, result.manifest)
        if isinstance(result.manifest, CancelRequest):
            return self._recorder.cancel(claim, result.manifest)
        if isinstance(result.manifest, PriorityRequest):
            return self._recorder.reprioritise(claim, result.manifest)
        return self._recorder.reject(claim, result.format(claim.shown))

    def _staging(self, claim: Claim) -> Path:
        return self.settings.storage / STAGING / claim.manifest_id

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)


def _same_folder(first: Path, second: Path) -> bool:
    try:
        return first.samefile(second)
    except OSError:
        return False


__all__ = ["ACCEPT_STEPS", "REJECT_STEPS", "Intake", "IntakeResult", "Outcome"]
