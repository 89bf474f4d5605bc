"""`vidgen doctor`: ``diagnose(settings)`` checks what vidgen needs and says, line by line, what
is ok and what to fix (``checks``: FFmpeg, the database, inboxes, disks, the status page;
``comfyui``: each backend)."""

from vidgen.doctor.checks import diagnose, filesystem_of
from vidgen.doctor.comfyui import Finding, Level

__all__ = ["Finding", "Level", "diagnose", "filesystem_of"]
