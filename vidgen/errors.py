"""The one exception tree of vidgen; the edges (intake, worker, status page, CLI) put it in words.

VidgenError            .user_message (a sentence for a person), .retryable
├── ConfigError        bad config.yaml or environment: the CLI prints it and exits 2
├── ManifestError      .problems: every problem of one manifest, each with its path and line
├── ComfyUIError
│   ├── ComfyUIUnavailable   timeout, 5xx, refused, dropped socket, lost prompt: retryable
│   ├── ComfyUIRejected      /prompt answered with node errors: names each node and input
│   ├── ComfyUIExecutionError  the prompt ran and a node raised
│   └── ComfyUIInterrupted     the prompt was interrupted (by us: cancel)
├── FFmpegError        the meaningful last stderr lines; full stderr goes to the log
├── StorageError       disk full, path escaping its folder, file vanished
│   └── DatabaseUnavailable  database gone or restarting: retryable
├── JobCancelled       the job was cancelled while it ran
└── NotificationError  a webhook or Apprise target did not take a notification: retryable
"""

from __future__ import annotations

from dataclasses import dataclass


class VidgenError(Exception):
    """Base of every error vidgen raises on purpose."""

    retryable: bool = False

    def __init__(self, user_message: str, *, retryable: bool | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        if retryable is not None:
            self.retryable = retryable


class ConfigError(VidgenError):
    """A setting is wrong; the message names it and says what is expected."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a manifest: where (YAML path and line) and what, in words."""

    path: str
    line: int
    message: str

    def format(self, file_name: str) -> str:
        """The one format everywhere: ``FILE:LINE: PATH: MESSAGE``."""
        where = self.path or "(manifest)"
        return f"{file_name}:{self.line}: {where}: {self.message}"


class ManifestError(VidgenError):
    """A manifest was rejected; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.path))
        count = len(self.problems)
        super().__init__(f"the manifest has {count} problem{'s' if count != 1 else ''}")

    def format(self, file_name: str) -> str:
        return "\n".join(p.format(file_name) for p in self.problems)


class ComfyUIError(VidgenError):
    """Anything that went wrong talking to ComfyUI or inside it."""


class ComfyUIUnavailable(ComfyUIError):
    retryable = True


class ComfyUIRejected(ComfyUIError):
    """ComfyUI refused the graph at validation."""


class ComfyUIExecutionError(ComfyUIError):
    """A node raised while the prompt ran."""


class ComfyUIInterrupted(ComfyUIError):
    """The prompt was interrupted before it finished."""


class FFmpegError(VidgenError):
    """ffmpeg or ffprobe failed; the message holds its meaningful last lines."""


class StorageError(VidgenError):
    """A file could not be written, read or placed (disk full, escaping path, vanished file)."""


class DatabaseUnavailable(StorageError):
    retryable = True


class JobCancelled(VidgenError):
    """The job was cancelled while it ran."""


class NotificationError(VidgenError):
    """A notification target did not take a message; it is tried again later."""

    retryable = True
