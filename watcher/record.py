"""The end of taking a manifest: rejected (error file, then moved to ``rejected/``), or accepted
(its checked files moved into storage, everything recorded in one transaction, the resolved
manifest written, the manifest stored); ``Claim`` and the outcomes are shared with intake.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from vidgen.config import InboxSettings, Settings
from vidgen.db.manifests import (
    ProjectTarget,
    RequestFile,
    find_project_target,
    record_cancel,
    record_manifest,
    record_priority,
)
from vidgen.db.outbox import record_rejection
from vidgen.db.session import Database
from vidgen.errors import ManifestError, Problem
from vidgen.naming import FileType, allocate_path, project_name
from vidgen.safe_files import shown_name
from vidgen.shown_paths import ShownPaths
from watcher import files
from watcher.manifest import CancelRequest, Manifest, PriorityRequest
from watcher.plan import Placement, StoredReference, build_record, resolved_text

log = logging.getLogger("watcher.intake")  # one logger for all of intake's lines


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    UNCHANGED = "unchanged"  # recorded; nothing to do, nothing queued
    CANCELLED = "cancelled"
    REPRIORITISED = "reprioritised"
    REJECTED = "rejected"
    WAITING = "waiting"  # left in the inbox: its files are not there yet, or another process has it
    GONE = "gone"  # taken by another watcher, or removed before it could be read
    RETRY = "retry"  # claimed, then a passing failure: ``claimed`` is to be resumed later


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: Outcome
    source: Path
    message: str = ""
    project_name: str | None = None
    manifest_id: str | None = None
    stored_path: Path | None = None
    claimed: Path | None = None  # RETRY: the claimed file, for ``resume``


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed file and what is known of it."""

    path: Path  # inside processing/
    manifest_id: str
    original: str  # the name it was dropped under
    inbox: InboxSettings
    raw: bytes

    @property
    def source(self) -> Path:
        return self.inbox.path / self.original

    @property
    def shown(self) -> str:
        """The name as a person reads it: what is not UTF-8 in it escaped."""
        return shown_name(self.original)


class Recorder:
    """Rejects or records claimed manifests; ``step`` is called after each step (crash tests)."""

    def __init__(self, settings: Settings, database: Database, step: Callable[[str], None]):
        self.settings = settings
        self.database = database
        self._step = step
        self._shown = ShownPaths.from_settings(settings)

    def reject(self, claim: Claim, problems: str) -> IntakeResult:
        # The error file is read by whoever dropped the manifest: no folder of this machine.
        error_text = self._shown.text(problems)
        record_rejection(self.database, claim.manifest_id, claim.shown, error_text)
        attempt = 1
        while True:
            target = files.rejected_target(claim.inbox.path, claim.original, attempt)
            if not os.path.lexists(target):
                files.write_atomically(
                    target.with_name(target.name + files.ERROR_SUFFIX), error_text + "\n"
                )
                self._step("error-written")
                if files.move_no_clobber(claim.path, target):
                    break
            attempt += 1
        self._step("rejected")
        count = error_text.count("\n") + 1
        log.warning(
            "rejected %s (%d problem(s)); see %s.error.txt",
            shown_name(claim.source),
            count,
            shown_name(target),
        )
        return IntakeResult(Outcome.REJECTED, claim.source, error_text, manifest_id=None)

    def accept(self, claim: Claim, manifest: Manifest) -> IntakeResult:
        stored_refs = self._store_references(manifest)
        self._step("refs-copied")
        folder = self._manifests_folder(manifest.project_name)
        placement = Placement(
            manifest_id=claim.manifest_id,
            source_path=Path(shown_name(claim.source)),
            stored_folder=folder,
            stored_extension=_extension(claim.original),
            content_sha256=files.sha256_bytes(claim.raw),
            outbox=self.settings.outbox_for(claim.inbox.path),
        )
        record = build_record(manifest, placement, stored_refs)
        try:
            outcome = record_manifest(self.database, record, _draw_seed)
        except ManifestError as exc:  # a pick by a seed none of the clip's variations has
            return self.reject(claim, exc.format(claim.shown))
        stored_path = Path(outcome.stored_path)
        self._step("recorded")
        for note in manifest.notes:
            log.info("%s: %s", claim.shown, note)
        if outcome.export_job_id is None:
            log.info(
                "%s: nothing changed in project %s; recorded, nothing queued",
                shown_name(claim.source),
                manifest.project_name,
            )
            return self.store(claim, stored_path, outcome.resolved, Outcome.UNCHANGED)
        log.info(
            "accepted %s: project %s, %d clip(s), %d to generate, export job %s",
            shown_name(claim.source),
            manifest.project_name,
            len(outcome.clip_ids),
            len(outcome.generate_job_ids),
            outcome.export_job_id,
        )
        return self.store(claim, stored_path, outcome.resolved, Outcome.ACCEPTED)

    def cancel(self, claim: Claim, request: CancelRequest) -> IntakeResult:
        target = self._target(request.target)
        if target is None:
            return self._no_such_project(claim, "cancel", request.target, request.line)
        stored_path, file = self._request_file(claim, target)
        count = record_cancel(self.database, target, file)
        self._step("recorded")
        by = shown_name(claim.source)
        log.info("cancelled project %s (%d job(s)) by %s", target.project_name, count, by)
        resolved = {"cancel": target.project_name}
        return self.store(claim, stored_path, resolved, Outcome.CANCELLED)

    def reprioritise(self, claim: Claim, request: PriorityRequest) -> IntakeResult:
        target = self._target(request.target)
        if target is None:
            return self._no_such_project(claim, "project", request.target, request.line)
        stored_path, file = self._request_file(claim, target)
        count = record_priority(self.database, target, request.priority, file)
        self._step("recorded")
        log.info(
            "project %s: %d waiting job(s) now %s priority, by %s",
            target.project_name,
            count,
            request.priority.word,
            shown_name(claim.source),
        )
        resolved = {"priority": request.priority.word, "projectName": target.project_name}
        return self.store(claim, stored_path, resolved, Outcome.REPRIORITISED)

    def _request_file(self, claim: Claim, target: ProjectTarget) -> tuple[Path, RequestFile]:
        """Where a cancel or priority manifest is kept, named before it is recorded."""
        stored_path = self._allocate_manifest_path(target.project_name, claim.original)
        self._step("named")
        file = RequestFile(
            manifest_id=claim.manifest_id,
            source_path=shown_name(claim.source),
            stored_path=str(stored_path),
            content_hash=files.sha256_bytes(claim.raw),
        )
        return stored_path, file

    def _target(self, named: str) -> ProjectTarget | None:
        return find_project_target(self.database, named, project_name(named))

    def _no_such_project(self, claim: Claim, key: str, named: str, line: int) -> IntakeResult:
        problem = Problem(key, line, f"no project or job named '{named}'")
        return self.reject(claim, problem.format(claim.shown))

    def store(
        self, claim: Claim, stored_path: Path, resolved: dict[str, Any], outcome: Outcome
    ) -> IntakeResult:
        """The steps after the commit point; redone as they are by ``recover()``. The stored
        manifest is written from the bytes that were checked, never linked to the claimed file
        (which could have been swapped for a link since)."""
        resolved_path = stored_path.with_name(stored_path.stem + ".resolved.json")
        files.write_atomically(resolved_path, resolved_text(resolved))
        self._step("resolved-written")
        files.write_atomically(stored_path, claim.raw)
        claim.path.unlink(missing_ok=True)
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
        """Move each checked copy into the project's refs/ once; a stored file with the same
        bytes is used instead (the same content is kept once per project)."""
        folder = self.settings.storage / manifest.project_name / "refs"
        stored: dict[Path, StoredReference] = {}
        for clip in manifest.clips:
            staged = clip.reference.staged if clip.reference is not None else None
            if clip.source is None or staged is None or clip.source in stored:
                continue
            target = files.find_same_content(folder, staged.size, staged.sha256)
            if target is None:
                files.ensure_folder(folder)
                name = manifest.project_name
                target = allocate_path(self.database, folder, name, FileType.REF, staged.extension)
                staged.path.replace(target)  # one filesystem: the copy appears whole
            stored[clip.source] = StoredReference(target, staged.sha256)
        return stored


def _extension(original: str) -> str:
    return Path(original).suffix.lstrip(".").lower() or "yaml"


def _draw_seed() -> int:
    return secrets.randbits(64)
