"""Intake: watch inbox folders, wait for complete files, parse and validate manifests, record jobs.

``read_manifest``/``check_file`` read a manifest exactly as intake does; ``Intake`` takes one
complete file; ``Watcher`` runs the observers and the intake thread.
"""

from watcher.intake import ACCEPT_STEPS, REJECT_STEPS, Intake, IntakeResult, Outcome
from watcher.manifest import (
    CancelRequest,
    Catalogue,
    Manifest,
    ValidationResult,
    check_file,
    read_manifest,
)
from watcher.observer import InboxState, Watcher, WatcherStatus
from watcher.resolve import ManifestClip

__all__ = [
    "ACCEPT_STEPS",
    "REJECT_STEPS",
    "CancelRequest",
    "Catalogue",
    "InboxState",
    "Intake",
    "IntakeResult",
    "Manifest",
    "ManifestClip",
    "Outcome",
    "ValidationResult",
    "Watcher",
    "WatcherStatus",
    "check_file",
    "read_manifest",
]
