"""The export plan: the ordered steps an export job runs.

A step is ONE ffmpeg run or ONE ComfyUI stage. Neighbouring stages that FFmpeg alone performs are
fused into one ffmpeg run (join + transitions + minterpolate + lanczos + encode): no intermediate
file, one decode, one encode. Only a ComfyUI stage splits the run, e.g.
``ffmpeg merge -> comfyui upscale -> ffmpeg rest + encode``, with near-lossless intermediates in
the work folder the caller gives. Each stage module contributes its filters and cost, and
``stages.comfyui_steps`` the ComfyUI steps; this module orders and fuses them. It only plans: the
export job runs a plan, ``vidgen validate`` prints one.

Stage order: merge, interpolate, upscale, encode, except that ComfyUI upscales before a ComfyUI
interpolation. Interpolating first means the costly interpolation sees small frames (minterpolate
costs per pixel; RIFE on 2048² frames strains a 12 GB card); with both on the GPU, Real-ESRGAN is
the costly one, so it goes first and sees the fewest frames (docs/export.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from stages import encode, interpolate, merge, upscale
from stages.comfyui_steps import ComfyUIStep, interpolate_step, upscale_step
from stages.merge import ClipInput, Source
from stages.shapes import VideoShape
from vidgen.errors import VidgenError
from vidgen.ffmpeg import file_arg, filter_number
from vidgen.specs import MAX_OUTPUT_SIDE, Engine, ExportSpec, OutputFormat, Quality, TransitionSpec

__all__ = [
    "ExportPlan",
    "ExportPlanError",
    "FFmpegStep",
    "Step",
    "build_export_plan",
    "deliver_as_is_step",
]

# Start-up and teardown of one ffmpeg process, measured at ~0.06 s on 2 cores.
_STEP_OVERHEAD_SEC = 0.06
# Decoding an H.264 input, per megapixel of frames (measured).
_DECODE_SEC_PER_MPX = 0.004


class ExportPlanError(VidgenError):
    """The export cannot be made from these clips; ``path`` is the manifest key to blame."""

    def __init__(self, user_message: str, *, path: str) -> None:
        super().__init__(user_message)
        self.path = path


@dataclass(frozen=True, slots=True)
class FFmpegStep:
    """One ffmpeg run: ``args`` (file names already ``file:``-prefixed) writes ``output``."""

    stages: tuple[str, ...]  # e.g. ("merge", "upscale", "encode"): what this run fuses
    details: tuple[str, ...]  # one phrase per stage, for describe()
    args: tuple[str, ...]
    inputs: tuple[Path, ...]
    output: Path
    shape: VideoShape
    stream_copy: bool
    estimated_sec: float
    estimated_bytes: int
    concat_list: Path | None = None  # written from concat_text before the run, removed after
    concat_text: str = ""


Step = FFmpegStep | ComfyUIStep


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """The steps in order; the last one writes ``output`` with ``shape``."""

    steps: tuple[Step, ...]
    output: Path
    shape: VideoShape
    format: OutputFormat
    quality: Quality

    @property
    def estimated_sec(self) -> float:
        return sum(s.estimated_sec for s in self.steps)

    @property
    def estimated_bytes(self) -> int:
        return self.steps[-1].estimated_bytes

    def progress(self, step_index: int, fraction: float) -> float:
        """Overall 0..1 when step ``step_index`` is ``fraction`` done, weighted by estimates."""
        done = sum(s.estimated_sec for s in self.steps[:step_index])
        current = self.steps[step_index].estimated_sec * min(max(fraction, 0.0), 1.0)
        return (done + current) / self.estimated_sec


@dataclass(frozen=True, slots=True)
class _Part:
    """One stage's contribution to a fused ffmpeg run: a linear chain of filters."""

    stage: str
    detail: str
    filters: tuple[str, ...]
    shape: VideoShape
    cost_sec: float


def build_export_plan(
    spec: ExportSpec,
    clips: Sequence[ClipInput],
    *,
    size: tuple[int, int],
    fps: float,
    output: Path,
    work_dir: Path,
    chunk_frames: int,
) -> ExportPlan:
    """Plan the export of ``clips`` (in order) to ``output`` at the project's ``size`` and ``fps``.

    Intermediate files, if any, go to ``work_dir``; a ComfyUI upscale sends at most
    ``chunk_frames`` frames per prompt. Nothing is run.

    Raises:
        ExportPlanError: no clips, a transition longer than a clip, a side over 4096 px.
    """
    if not clips:
        raise ExportPlanError("there is no clip to export", path="clips")
    if spec.deliver_as_is:
        if len(clips) != 1:
            raise ExportPlanError("only a single clip can be delivered as it is", path="export")
        step = deliver_as_is_step(clips[0], output)
        return ExportPlan((step,), output, step.shape, OutputFormat.MP4, Quality.STANDARD)
    _check_transition(clips, spec.transition)
    shape = VideoShape(*size, fps, merge.joined_duration(clips, spec.transition))
    head = merge.join_source(clips, spec.transition, size, fps, work_dir)
    planner = _Planner(spec, work_dir, chunk_frames, head, shape)
    for stage in _stage_order(spec):
        planner.add(stage)
    last = planner.finish(output)
    return ExportPlan(tuple(planner.steps), output, last.shape, spec.format, spec.quality)


def _stage_order(spec: ExportSpec) -> list[str]:
    stages = ["interpolate"] if spec.interpolate else []
    if spec.upscale:
        both_on_gpu = (
            spec.interpolate is not None
            and spec.interpolate.engine is Engine.COMFYUI
            and spec.upscale.engine is Engine.COMFYUI
        )
        stages.insert(0 if both_on_gpu else len(stages), "upscale")
    return stages


def _check_transition(clips: Sequence[ClipInput], transition: TransitionSpec) -> None:
    if merge.transition_name(transition) is None or len(clips) < 2:
        return
    if transition.duration_sec <= 0:
        raise ExportPlanError(
            "a transition needs a duration above 0 seconds", path="export.transition.duration"
        )
    for index, clip in enumerate(clips):
        joins = 1 if index in (0, len(clips) - 1) else 2
        if transition.duration_sec * joins >= clip.duration_sec:
            raise ExportPlanError(
                f"the {filter_number(transition.duration_sec)} s transition is too long for clip "
                f"{index + 1}: it lasts {clip.duration_sec:.2f} s and has {joins} transition(s), "
                f"so each must be shorter than {clip.duration_sec / joins:.2f} s",
                path="export.transition.duration",
            )


def _file_source(path: Path, *, copy_codec: str | None = None, shape: VideoShape) -> Source:
    return merge.file_source(
        path, copy_codec=copy_codec, decode_sec=_DECODE_SEC_PER_MPX * shape.mpx_frames
    )


@dataclass
class _Planner:
    """Collects parts into fused ffmpeg runs, cutting a run wherever a ComfyUI stage sits."""

    spec: ExportSpec
    work_dir: Path
    chunk_frames: int
    head: Source
    shape: VideoShape
    chain: list[_Part] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def add(self, stage: str) -> None:
        if stage == "upscale":
            assert self.spec.upscale is not None
            self._check_size(self.spec.upscale.scale)
            if self.spec.upscale.engine is Engine.COMFYUI:
                self._comfyui_upscale()
            else:
                self._append(_lanczos_part(self.shape, self.spec.upscale.scale))
            return
        assert self.spec.interpolate is not None
        target = float(self.spec.interpolate.fps)
        if self.spec.interpolate.engine is Engine.COMFYUI and target > self.shape.fps:
            self._comfyui_interpolate(target)
        else:
            self._append(_minterpolate_part(self.shape, target))

    def finish(self, output: Path) -> FFmpegStep:
        target = (self.spec.format, self.spec.quality)
        step = _ffmpeg_step(self.head, self.chain, self.shape, target, output)
        self.steps.append(step)
        return step

    def _append(self, part: _Part) -> None:
        self.chain.append(part)
        self.shape = part.shape

    def _check_size(self, scale: int) -> None:
        width, height = upscale.upscaled_size(self.shape.width, self.shape.height, scale)
        if max(width, height) > MAX_OUTPUT_SIDE:
            raise ExportPlanError(
                f"upscaling {self.shape.width}x{self.shape.height} by {scale} gives "
                f"{width}x{height}, but no side may exceed {MAX_OUTPUT_SIDE} px; "
                "choose a smaller scale or resolution",
                path="export.upscale.scale",
            )

    def _intermediate(self) -> Path:
        """The file a ComfyUI stage reads: the run so far, or the previous stage's own output."""
        if not self.chain and not self.head.graph and len(self.head.inputs) == 1:
            return self.head.inputs[0]
        stages = "_".join(self.head.stages + tuple(p.stage for p in self.chain))
        path = self.work_dir / f"{len(self.steps) + 1:02d}_{stages}.mp4"
        target = (None, Quality.STANDARD)
        self.steps.append(_ffmpeg_step(self.head, self.chain, self.shape, target, path))
        return path

    def _comfyui_upscale(self) -> None:
        assert self.spec.upscale is not None
        source, before = self._intermediate(), self.shape
        step = upscale_step(
            self.spec.upscale.model,
            self.spec.upscale.scale,
            source,
            before,
            self.work_dir / f"{len(self.steps) + 1:02d}_comfyui_upscale.mp4",
            self.chunk_frames,
        )
        out = replace(before, width=step.output_size[0], height=step.output_size[1])
        self._after_comfyui(step, out, [])

    def _comfyui_interpolate(self, target: float) -> None:
        assert self.spec.interpolate is not None
        source, before = self._intermediate(), self.shape
        step = interpolate_step(
            self.spec.interpolate.model,
            target,
            source,
            before,
            self.work_dir / f"{len(self.steps) + 1:02d}_comfyui_interpolate.mp4",
        )
        out = replace(before, fps=target)
        fixup = _Part(
            stage="interpolate",
            detail=f"hold RIFE's last frame, resample to {filter_number(target)} fps",
            filters=tuple(interpolate.rife_fixup_filters(step.output_fps, step.multiplier, target)),
            shape=out,
            cost_sec=0.0,
        )
        self._after_comfyui(step, out, [fixup])

    def _after_comfyui(self, step: ComfyUIStep, shape: VideoShape, chain: list[_Part]) -> None:
        self.steps.append(step)
        self.head = _file_source(step.output, shape=shape)
        self.shape = shape
        self.chain = chain


def _lanczos_part(shape: VideoShape, scale: int) -> _Part:
    width, height = upscale.upscaled_size(shape.width, shape.height, scale)
    out = replace(shape, width=width, height=height)
    return _Part(
        stage="upscale",
        detail=f"upscale {scale}x to {width}x{height} (lanczos)",
        filters=(upscale.lanczos_filter(shape.width, shape.height, scale),),
        shape=out,
        cost_sec=upscale.lanczos_cost_sec(out.mpx_frames),
    )


def _minterpolate_part(shape: VideoShape, target: float) -> _Part:
    out = replace(shape, fps=target)
    how = "minterpolate" if target > shape.fps else "dropping frames"
    return _Part(
        stage="interpolate",
        detail=f"interpolate {filter_number(shape.fps)} -> {filter_number(target)} fps ({how})",
        filters=tuple(interpolate.minterpolate_filters(shape.fps, target, shape.duration_sec)),
        shape=out,
        cost_sec=interpolate.minterpolate_cost_sec(
            shape.width * shape.height, shape.fps, target, shape.duration_sec
        ),
    )


def _ffmpeg_step(
    head: Source,
    chain: Sequence[_Part],
    shape: VideoShape,
    target: tuple[OutputFormat | None, Quality],
    output: Path,
) -> FFmpegStep:
    """Fuse ``head`` and ``chain`` into one run encoding to ``target`` (None: intermediate)."""
    fmt, quality = target
    copy = not chain and head.copy_codec is not None
    copy = copy and encode.stream_copy_allowed(fmt, head.copy_codec or "")
    graph, label, shape = _graph(head, chain, shape, target)
    mapping = ("-map", f"[{label}]" if graph else "0:v:0")
    filters = ("-filter_complex", graph) if graph else ()
    codec_args = encode.copy_args(head.copy_codec or "") if copy else encode.output_args(*target)
    # Copied packets keep their own size; a standard-quality H.264 estimate is close for clips.
    size_fmt, size_quality = (OutputFormat.MP4, Quality.STANDARD) if copy else target
    encode_sec = 0.0 if copy else encode.encode_cost_sec(fmt, quality, shape.mpx_frames)
    filter_sec = head.cost_sec + sum(p.cost_sec for p in chain)
    return FFmpegStep(
        stages=(*head.stages, *(p.stage for p in chain), "encode" if fmt else "intermediate"),
        details=(*head.details, *(p.detail for p in chain), _encode_detail(target, copy=copy)),
        args=(*head.args, *filters, *mapping, *codec_args, file_arg(output)),
        inputs=head.inputs,
        output=output,
        shape=shape,
        stream_copy=copy,
        estimated_sec=_run_sec(filter_sec, encode_sec),
        estimated_bytes=_size(size_fmt, size_quality, shape),
        concat_list=head.concat[0] if head.concat else None,
        concat_text=head.concat[1] if head.concat else "",
    )


def _run_sec(filter_sec: float, encode_sec: float) -> float:
    """One run's time: filters and encoder work in parallel threads, on 2 cores about half
    the shorter one hides behind the longer one (measured on fused minterpolate + x264 runs)."""
    return _STEP_OVERHEAD_SEC + max(filter_sec, encode_sec) + 0.5 * min(filter_sec, encode_sec)


def _size(fmt: OutputFormat | None, quality: Quality, shape: VideoShape) -> int:
    pixels = shape.width * shape.height
    return encode.encoded_bytes(
        fmt, quality, pixels=pixels, frames=shape.frame_count, fps=shape.fps
    )


def _graph(
    head: Source,
    chain: Sequence[_Part],
    shape: VideoShape,
    target: tuple[OutputFormat | None, Quality],
) -> tuple[str, str, VideoShape]:
    """The run's filter graph, the label to map, and the shape it writes."""
    parts = [head.graph] if head.graph else []
    label = head.label
    if chain:
        filters = ",".join(f for p in chain for f in p.filters)
        parts.append(f"[{label}]{filters}[chained]")
        label = "chained"
    fmt, quality = target
    if fmt is OutputFormat.GIF:
        width, height = encode.gif_size(shape.width, shape.height)
        parts.append(encode.gif_graph(label, "gif", (width, height), shape.fps, quality))
        label = "gif"
        shape = VideoShape(width, height, encode.gif_fps(shape.fps), shape.duration_sec)
    return ";".join(parts), label, shape


def _encode_detail(target: tuple[OutputFormat | None, Quality], *, copy: bool) -> str:
    fmt, quality = target
    if fmt is None:
        return "copy into an intermediate file" if copy else "near-lossless intermediate file"
    if copy:
        return f"write {fmt.value} with packets copied (no re-encode)"
    return f"encode {fmt.value} {quality.value}"


def deliver_as_is_step(clip: ClipInput, output: Path) -> FFmpegStep:
    """One run that remuxes a lone clip to MP4 (moov first, silent) without re-encoding.

    A clip in a codec MP4 players cannot take is encoded as mp4/standard instead.
    """
    shape = VideoShape(clip.width, clip.height, clip.fps, clip.duration_sec)
    head = _file_source(clip.path, copy_codec=clip.codec, shape=shape)
    return _ffmpeg_step(head, [], shape, (OutputFormat.MP4, Quality.STANDARD), output)
