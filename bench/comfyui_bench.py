"""ComfyUI round trips: per clip what vidgen adds around ComfyUI's own execution, the backend's
idle gap between consecutive prompts, and an export's ComfyUI steps (Real-ESRGAN, then RIFE) with
each intermediate video format VHS can write between them.

ComfyUI's execution time is read from its history: the ``execution_start`` and
``execution_success`` messages carry the server's timestamps, so the same script measures the
double, a CPU server and a GPU server alike.

    python bench/comfyui_bench.py                               (the double, started here)
    python bench/comfyui_bench.py --url http://127.0.0.1:8188   (a running ComfyUI)

The server needs vidgen's default models (config.yaml). Results go to docs/benchmarks.md, one
section per kind of server (the double, or the URL's ComfyUI version and device).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Run as a script, Python puts bench/ (not the repository) on sys.path; bench/ and tests/ live there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import bench_settings, double_process, percentile, write_section
from stages.encode import output_args
from stages.pool import make_workers
from tests.fixtures.pipeline import queue_clip, sent_prompts, text_clip
from tests.mariadb import throwaway_mariadb
from vidgen.config import Settings
from vidgen.db.models import Clip, Job
from vidgen.db.session import Database, open_database, upgrade
from vidgen.ffmpeg import file_arg, probe, run
from vidgen.specs import Engine, InterpolateSpec, OutputFormat, Quality, UpscaleSpec
from workflows import FrameChunk, Graph, build_interpolate, build_upscale
from workflows.comfyui_client import ComfyUIClient

DOUBLE_STEP_SECONDS = 0.05
FRAMES = 8
STEPS = 2
TARGET_FPS = 24
ENCODE_SIZE = 512  # VHS's own cost per format, measured apart from the models
ENCODE_FRAMES = 16

# VHS_VideoCombine inputs per intermediate; "format" picks VHS's preset, the rest are its widgets.
FORMATS: dict[str, dict[str, Any]] = {
    "h264 crf 19 (vidgen's until now)": {
        "format": "video/h264-mp4",
        "pix_fmt": "yuv420p",
        "crf": 19,
    },
    "h264 crf 0 (lossless yuv420p)": {"format": "video/h264-mp4", "pix_fmt": "yuv420p", "crf": 0},
    "ffv1-mkv bgra (lossless RGB)": {
        "format": "video/ffv1-mkv",
        "pix_fmt": "bgra",
        "level": "3",
        "coder": "1",
        "context": "1",
        "gop_size": 1,
        "slices": "16",
        "slicecrc": "1",
    },
}
_FORMAT_WIDGETS = {"pix_fmt", "crf", "level", "coder", "context", "gop_size", "slices", "slicecrc"}


@dataclass(frozen=True)
class StageRun:
    """One ComfyUI stage of the export: upload, execution (server clock), wall, download, bytes."""

    upload_s: float
    execution_s: float
    wall_s: float
    download_s: float
    output_bytes: int
    output: Path


def history(url: str, prompt_id: str) -> dict[str, Any]:
    item: dict[str, Any] = httpx.get(
        f"{url}/history/{prompt_id}", timeout=30, trust_env=False
    ).json()[prompt_id]
    return item


def server_times(url: str, prompt_id: str) -> tuple[float, float]:
    """``execution_start`` and ``execution_success`` of a prompt, in seconds of the server's clock."""
    stamps = {
        name: data["timestamp"] / 1000
        for name, data in history(url, prompt_id)["status"]["messages"]
    }
    return stamps["execution_start"], stamps["execution_success"]


def run_clips(
    database: Database, settings: Settings, first: int, clips: int, size: int
) -> tuple[float, list[str], str]:
    """Queue ``clips`` clips at once and run them on the settings' backend: the wall time, the
    job ids and the first clip's id."""
    pairs = [
        queue_clip(
            database,
            text_clip(
                settings, f"clip{n}", seed=n, steps=STEPS, frames=FRAMES, width=size, height=size
            ),
            project_name="comfyuiBench",
            order_index=n,
        )
        for n in range(first, first + clips)
    ]
    ids = [job_id for _, job_id in pairs]
    workers = make_workers(settings, database)
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        while not all(_ended(database, job_id) for job_id in ids):
            time.sleep(0.02)
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(30)
    for job_id in ids:
        with database.session() as session:
            job = session.get_one(Job, job_id)
            if job.job_status != "completed":
                raise RuntimeError(f"clip job {job_id} ended {job.job_status}: {job.error_message}")
    return wall, ids, pairs[0][0]


def generation(
    database: Database, settings: Settings, url: str, clips: int, size: int
) -> dict[str, Any]:
    """One clip alone (vidgen's whole time around it), then ``clips`` queued at once: what vidgen
    adds per clip, and the backend's idle gaps between the prompts (server clock only, so a
    remote server's clock may differ from ours)."""

    def spans(ids: list[str]) -> list[tuple[float, float]]:
        return sorted(
            server_times(url, p.prompt_id) for i in ids for p in sent_prompts(database, i)
        )

    alone_wall, alone_ids, clip_id = run_clips(database, settings, 0, 1, size)
    ((start, end),) = spans(alone_ids)
    batch_wall, batch_ids, _ = run_clips(database, settings, 1, clips, size)
    batch = spans(batch_ids)
    executions = [e - s for s, e in batch]
    with database.session() as session:
        first = Path(session.get_one(Clip, clip_id).file_path or "")
    return {
        "alone": alone_wall - (end - start),
        "alone_execution": end - start,
        "per_clip": (batch_wall - sum(executions)) / clips,
        "executions": executions,
        "gaps": [b[0] - a[1] for a, b in itertools.pairwise(batch)],
        "clip": first,
    }


def _ended(database: Database, job_id: str) -> bool:
    with database.session() as session:
        return session.get_one(Job, job_id).job_status in {"completed", "failed", "cancelled"}


def with_format(graph: Graph, inputs: dict[str, Any]) -> Graph:
    """The graph with its VHS_VideoCombine writing ``inputs``' format instead."""
    for node in graph.values():
        if node["class_type"] == "VHS_VideoCombine":
            kept = {k: v for k, v in node["inputs"].items() if k not in _FORMAT_WIDGETS}
            node["inputs"] = {**kept, **inputs}
    return graph


def stage(
    client: ComfyUIClient,
    source: Path,
    work: Path,
    build: Callable[[str, str], Graph],
    fmt: dict[str, Any],
) -> StageRun:
    """Upload ``source``, run the graph ``build(uploaded name, job id)`` writing ``fmt``, download."""
    job_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    name = client.upload(source, f"vidgen-{job_id}-bench{source.suffix}")
    uploaded = time.monotonic()
    prompt_id = client.queue_prompt(with_format(build(name, job_id), fmt), str(uuid.uuid4()))
    result = client.follow(prompt_id, lambda _progress: None, lambda: False)
    finished = time.monotonic()
    output = client.download_video(result, work / f"{job_id}")
    downloaded = time.monotonic()
    start, end = server_times(client.base_url, prompt_id)
    return StageRun(
        upload_s=uploaded - started,
        execution_s=end - start,
        wall_s=finished - uploaded,
        download_s=downloaded - finished,
        output_bytes=output.stat().st_size,
        output=output,
    )


def export_steps(
    settings: Settings, url: str, clip: Path, work: Path, repeats: int
) -> dict[str, list[dict[str, float]]]:
    """Real-ESRGAN 2x, then RIFE to 24 fps, then vidgen's final encode, once per format per
    repeat (after one warm-up that loads the models)."""
    fps = probe(clip).fps
    frames = probe(clip).frame_count
    upscale_spec = UpscaleSpec(scale=2, engine=Engine.COMFYUI, model=settings.models.upscale)
    rife_spec = InterpolateSpec(fps=TARGET_FPS, engine=Engine.COMFYUI, model=settings.models.rife)

    def upscale_graph(name: str, job_id: str) -> Graph:
        return build_upscale(name, upscale_spec, FrameChunk(0, 0, frames), fps, job_id)

    def rife_graph(name: str, job_id: str) -> Graph:
        return build_interpolate(name, rife_spec, fps, job_id)

    results: dict[str, list[dict[str, float]]] = {label: [] for label in FORMATS}
    with ComfyUIClient(url, settings.comfyui) as client:
        warm = next(iter(FORMATS.values()))
        stage(client, stage(client, clip, work, upscale_graph, warm).output, work, rife_graph, warm)
        for _, (label, fmt) in itertools.product(range(repeats), FORMATS.items()):
            up = stage(client, clip, work, upscale_graph, fmt)
            rife = stage(client, up.output, work, rife_graph, fmt)
            final = work / f"final-{uuid.uuid4().hex[:8]}.mp4"
            started = time.monotonic()
            run(
                [
                    "-i",
                    file_arg(rife.output),
                    *output_args(OutputFormat.MP4, Quality.STANDARD),
                    file_arg(final),
                ],
                expected_duration_sec=0.0,
                output=final,
            )
            encode_s = time.monotonic() - started
            results[label].append(
                {
                    "upscale_exec": up.execution_s,
                    "upscale_wall": up.upload_s + up.wall_s + up.download_s,
                    "upscale_bytes": up.output_bytes,
                    "rife_exec": rife.execution_s,
                    "rife_wall": rife.upload_s + rife.wall_s + rife.download_s,
                    "rife_bytes": rife.output_bytes,
                    "encode": encode_s,
                    "total": up.upload_s
                    + up.wall_s
                    + up.download_s
                    + rife.upload_s
                    + rife.wall_s
                    + rife.download_s
                    + encode_s,
                }
            )
    return results


def encode_cost(
    client: ComfyUIClient, work: Path, repeats: int
) -> dict[str, list[tuple[float, int]]]:
    """VHS_VideoCombine alone per format: one noisy frame (a worst case for FFV1, which codes
    each frame on its own) repeated ENCODE_FRAMES times; execution seconds and bytes written.
    The loader and the batch are cached after the first prompt, so execution is the encode."""
    frame = work / "noise.png"
    source = f"testsrc2=size={ENCODE_SIZE}x{ENCODE_SIZE},noise=alls=60:allf=t"
    run(
        ["-f", "lavfi", "-i", source, "-frames:v", "1", file_arg(frame)],
        expected_duration_sec=0.0,
        output=frame,
    )
    name = client.upload(frame, f"vidgen-bench-{uuid.uuid4().hex[:8]}.png")
    costs: dict[str, list[tuple[float, int]]] = {label: [] for label in FORMATS}
    for attempt, (label, fmt) in itertools.product(range(repeats + 1), FORMATS.items()):
        graph: Graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {
                "class_type": "RepeatImageBatch",
                "inputs": {"image": ["1", 0], "amount": ENCODE_FRAMES},
            },
            "3": {
                "class_type": "VHS_VideoCombine",
                "inputs": {
                    "images": ["2", 0],
                    "frame_rate": 8.0,
                    "loop_count": 0,
                    "filename_prefix": f"vidgen/bench-{uuid.uuid4().hex[:8]}/encode",
                    **fmt,
                    "save_metadata": True,
                    "trim_to_audio": False,
                    "pingpong": False,
                    "save_output": True,
                },
            },
        }
        prompt_id = client.queue_prompt(graph, str(uuid.uuid4()))
        result = client.follow(prompt_id, lambda _progress: None, lambda: False)
        output = client.download_video(result, work / f"encode-{uuid.uuid4().hex[:8]}")
        start, end = server_times(client.base_url, prompt_id)
        if attempt:  # the first round loads the image
            costs[label].append((end - start, output.stat().st_size))
    return costs


def describe(url: str | None) -> str:
    if url is None:
        return "the ComfyUI double"
    stats = httpx.get(f"{url}/system_stats", timeout=30, trust_env=False).json()
    device = stats["devices"][0]
    return f"ComfyUI {stats['system']['comfyui_version']}, {device['name']}"


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {percentile(values, 0.99) * 1000:.0f} / {max(values) * 1000:.0f} ms"


def report(
    server: str,
    size: int,
    gen: dict[str, Any],
    steps: dict[str, list[dict[str, float]]],
    costs: dict[str, list[tuple[float, int]]],
) -> str:
    clips = len(gen["executions"])
    rows = [
        f"Clips of {size}x{size}, {FRAMES} frames, {STEPS} steps on one backend ({server}). Execution = "
        f"ComfyUI's `execution_success` − `execution_start` from its history: "
        f"{gen['alone_execution']:.2f} s for the clip alone, median {statistics.median(gen['executions']):.2f} s "
        f"in the batch.",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| one clip alone: worker's claim → clip ready, minus execution | {gen['alone'] * 1000:.0f} ms |",
        f"| {clips} clips queued at once: (wall − Σ execution) / clips | {gen['per_clip'] * 1000:.0f} ms |",
        f"| backend idle between consecutive prompts of the batch, median / p99 / max | {_ms(gen['gaps'])} |",
        "",
        f"Export steps on the first clip: Real-ESRGAN 2x ({size * 2}x{size * 2}), then RIFE to "
        f"{TARGET_FPS} fps, then vidgen's final mp4 encode; each stage's wall time includes upload and "
        f"download. Medians of {len(next(iter(steps.values())))} run(s) per format after one warm-up.",
        "",
        "| intermediate | upscale exec / wall s | upscale file | RIFE exec / wall s | RIFE file | final encode s | total s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in steps.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        rows.append(
            f"| {label} | {med['upscale_exec']:.2f} / {med['upscale_wall']:.2f} | {med['upscale_bytes'] / 1000:.0f} kB "
            f"| {med['rife_exec']:.2f} / {med['rife_wall']:.2f} | {med['rife_bytes'] / 1000:.0f} kB "
            f"| {med['encode']:.2f} | {med['total']:.2f} |"
        )
    rows += [
        "",
        f"VHS_VideoCombine alone, {ENCODE_FRAMES} frames of {ENCODE_SIZE}x{ENCODE_SIZE} (one noisy frame "
        f"repeated: FFV1 codes every frame on its own, h264 predicts the repeats), medians of "
        f"{len(next(iter(costs.values())))} run(s):",
        "",
        "| format | execution s | file |",
        "| --- | --- | --- |",
    ]
    for label, runs in costs.items():
        seconds = statistics.median(r[0] for r in runs)
        written = statistics.median(r[1] for r in runs)
        rows.append(f"| {label} | {seconds:.2f} | {written / 1e6:.2f} MB |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI (default: start the double)")
    parser.add_argument(
        "--clips",
        type=int,
        help="clips queued at once after the one alone (default: 10 on the double, 2 on a server)",
    )
    parser.add_argument(
        "--size", type=int, default=64, help="clip width and height in px (default 64)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="export runs per format (default: 5 on the double, 1 on a server)",
    )
    args = parser.parse_args()
    clips = args.clips or (2 if args.url else 10)
    repeats = args.repeats or (1 if args.url else 5)
    with ExitStack() as stack:
        root = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="vidgen-comfyui-bench-"))
        )
        url = (
            args.url.rstrip("/")
            if args.url
            else stack.enter_context(double_process(root / "comfyui", DOUBLE_STEP_SECONDS))
        )
        server = describe(args.url)
        database_url = stack.enter_context(throwaway_mariadb())
        database = open_database(database_url)
        upgrade(database)
        settings = bench_settings(
            root / "vidgen",
            database_url,
            comfyui={"urls": [url]},
            jobs={"pollSeconds": 0.05, "cpuWorkers": 0},
        )
        gen = generation(database, settings, url, clips, args.size)
        (root / "work").mkdir()
        steps = export_steps(settings, url, gen["clip"], root / "work", repeats)
        with ComfyUIClient(url, settings.comfyui) as client:
            costs = encode_cost(client, root / "work", max(repeats, 3))
        database.dispose()
    body = report(server, args.size, gen, steps, costs)
    print(body)
    command = "python bench/comfyui_bench.py" + (f" --url {args.url}" if args.url else "")
    title = (
        "ComfyUI round trips (double)" if args.url is None else f"ComfyUI round trips ({server})"
    )
    write_section(title, body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
