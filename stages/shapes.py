"""The shape of the video flowing between the steps of an export: size, rate and length."""

from __future__ import annotations

from dataclasses import dataclass

from vidgen.ffmpeg import filter_number


@dataclass(frozen=True, slots=True)
class VideoShape:
    """Size, rate and length of the video flowing between stages."""

    width: int
    height: int
    fps: float
    duration_sec: float

    @property
    def frame_count(self) -> int:
        return round(self.duration_sec * self.fps)

    @property
    def mpx_frames(self) -> float:
        return self.width * self.height * self.frame_count / 1e6

    def describe(self) -> str:
        return (
            f"{self.width}x{self.height}, {filter_number(self.fps)} fps, "
            f"{self.duration_sec:.3f} s ({self.frame_count} frames)"
        )
