"""The ComfyUI client: parsing of ComfyUI's answers, progress, and (against the double) the API."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.media import MakeClip
from vidgen.config import ComfyUISettings
from vidgen.errors import (
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIRejected,
    ComfyUIUnavailable,
)
from vidgen.specs import (
    ClipSpec,
    Engine,
    GenerationMode,
    InterpolateSpec,
    ModelKind,
    UpscaleSpec,
    resolve_model_name,
)
from workflows import (
    ComfyUIClient,
    OutputFile,
    PromptLookup,
    PromptProgress,
    PromptState,
    build_image_to_video,
    build_interpolate,
    build_text_to_video,
    build_upscale,
    interpolated_frame_count,
    plan_chunks,
)
from workflows.comfyui_types import (
    describe_rejection,
    parse_history_item,
    parse_queue,
    parse_system_stats,
)
from workflows.progress import ProgressTracker

T = TypeVar("T")

# --- parsing, on the shapes of the captures in comfyui_double/captured ----------------------------


def test_rejection_names_each_node_its_type_input_and_message() -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
        },
        "node_errors": {
            "1": {
                "class_type": "EmptyImage",
                "dependent_outputs": ["2"],
                "errors": [
                    {
                        "type": "value_bigger_than_max",
                        "message": "Value 5000 bigger than max of 4096",
                        "details": "batch_size",
                        "extra_info": {"input_name": "batch_size", "received_value": 5000},
                    }
                ],
            },
            "2": {
                "class_type": "RIFE VFI",
                "dependent_outputs": ["3"],
                "errors": [
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": "dtype",
                        "extra_info": {"input_name": "dtype"},
                    },
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "ckpt_name: 'rife46.pth' not in ['rife47.pth']",
                        "extra_info": {"input_name": "ckpt_name"},
                    },
                ],
            },
        },
    }
    assert describe_rejection(body) == (
        "ComfyUI rejected the graph: "
        "node 1 (EmptyImage), input 'batch_size': Value 5000 bigger than max of 4096; "
        "node 2 (RIFE VFI), input 'dtype': Required input is missing; "
        "node 2 (RIFE VFI), input 'ckpt_name': Value not in list "
        "(ckpt_name: 'rife46.pth' not in ['rife47.pth'])"
    )


def test_rejection_without_node_errors_uses_the_prompt_error() -> None:
    body = {
        "error": {
            "type": "invalid_prompt",
            "message": "Cannot execute because node NoSuchNode does not exist.",
            "details": "Node ID '#1'",
        },
        "node_errors": {},
    }
    assert describe_rejection(body) == (
        "ComfyUI rejected the graph: Cannot execute because node NoSuchNode does not exist. "
        "(Node ID '#1')"
    )


def test_history_outputs_list_vhs_gifs_and_saveimage_images() -> None:
    item = {
        "outputs": {
            "15": {
                "gifs": [
                    {
                        "filename": "clip_00001.mp4",
                        "subfolder": "vidgen/job",
                        "type": "output",
                        "format": "video/h264-mp4",
                        "frame_rate": 8.0,
                        "workflow": "clip_00001.png",
                        "fullpath": "/opt/ComfyUI/output/vidgen/job/clip_00001.mp4",
                    }
                ]
            },
            "11": {"images": [{"filename": "img_00001_.png", "subfolder": "", "type": "output"}]},
        },
        "status": {
            "status_str": "success",
            "completed": True,
            "messages": [["execution_cached", {"nodes": ["1", "2"], "prompt_id": "p"}]],
        },
    }
    lookup = parse_history_item("p", item)

    assert lookup.state is PromptState.FINISHED
    assert lookup.result is not None
    video, image = lookup.result.outputs
    assert (video.node_id, video.filename, video.subfolder) == (
        "15",
        "clip_00001.mp4",
        "vidgen/job",
    )
    assert (video.format, video.frame_rate) == ("video/h264-mp4", 8.0)
    assert (image.filename, image.format, image.frame_rate) == ("img_00001_.png", None, None)
    assert lookup.result.videos == (video,)
    assert lookup.result.cached_nodes == ("1", "2")


def test_history_of_a_failed_prompt_says_which_node_failed_and_why() -> None:
    error = {
        "prompt_id": "p",
        "node_id": "1",
        "node_type": "CheckpointLoaderSimple",
        "exception_message": "Error while deserializing header: header too large\n",
        "exception_type": "safetensors._safetensors_rust.SafetensorError",
    }
    item = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_error", error]],
        },
    }
    lookup = parse_history_item("p", item)

    assert lookup.state is PromptState.FAILED
    assert isinstance(lookup.error, ComfyUIExecutionError)
    assert lookup.error.user_message == (
        "ComfyUI failed in node 1 (CheckpointLoaderSimple): SafetensorError: "
        "Error while deserializing header: header too large"
    )
    interrupted = {"node_id": "2", "node_type": "VHS_VideoCombine", "prompt_id": "p"}
    item["status"]["messages"] = [["execution_interrupted", interrupted]]
    assert isinstance(parse_history_item("p", item).error, ComfyUIInterrupted)


def test_queue_sorts_pending_by_number_and_keeps_client_ids() -> None:
    body = {
        "queue_running": [[28, "a", {}, {"client_id": "me"}, ["2"]]],
        "queue_pending": [[31, "c", {}, {}, ["2"]], [29, "b", {}, {"client_id": "other"}, ["2"]]],
    }
    queue = parse_queue(body)

    assert [e.prompt_id for e in queue.running] == ["a"]
    assert [(e.prompt_id, e.client_id) for e in queue.pending] == [("b", "other"), ("c", None)]
    assert queue.is_running("a")
    assert queue.is_pending("c")
    assert not queue.is_pending("a")


def test_system_stats_reads_devices() -> None:
    body = {
        "system": {"comfyui_version": "0.3.64", "ram_total": 8, "ram_free": 4},
        "devices": [
            {"name": "cuda:0 NVIDIA", "type": "cuda", "index": 0, "vram_total": 12, "vram_free": 10}
        ],
    }
    stats = parse_system_stats(body)
    assert stats.comfyui_version == "0.3.64"
    assert [(d.type, d.index, d.vram_total, d.vram_free) for d in stats.devices] == [
        ("cuda", 0, 12, 10)
    ]


# --- progress ------------------------------------------------------------------------------------


def t2v_graph() -> dict[str, Any]:
    kinds = [
        "CheckpointLoaderSimple",
        "CLIPTextEncode",
        "KSampler",
        "VAEDecode",
        "VHS_VideoCombine",
    ]
    return {str(i): {"class_type": kind, "inputs": {}} for i, kind in enumerate(kinds, start=1)}


def test_progress_weighs_the_sampler_most_and_never_goes_back() -> None:
    tracker = ProgressTracker("p", t2v_graph())
    fractions = []
    events: list[tuple[str, dict[str, Any]]] = [
        ("execution_cached", {"nodes": []}),
        ("executing", {"node": "1"}),
        ("executing", {"node": "2"}),
        ("executing", {"node": "3"}),
        ("progress", {"node": "3", "value": 10, "max": 20}),
        ("progress", {"node": "3", "value": 20, "max": 20}),
        ("executing", {"node": "4"}),
        ("executing", {"node": "5"}),
        ("progress", {"node": "5", "value": 8, "max": 8}),
        ("executed", {"node": "5"}),
    ]
    for kind, data in events:
        report = tracker.update(kind, data)
        if report is not None:
            fractions.append(round(report.fraction, 3))

    total = 3 + 1 + 70 + 5 + 10
    assert fractions == sorted(fractions)
    assert fractions[4] == round((3 + 1 + 35) / total, 3)  # half the sampler's steps
    assert fractions[-1] == 1.0
    assert tracker.finished().fraction == 1.0


def test_progress_counts_cached_nodes_as_done() -> None:
    tracker = ProgressTracker("p", t2v_graph())
    report = tracker.update("execution_cached", {"nodes": ["1", "2", "3"]})
    assert report is not None
    assert report.fraction == (3 + 1 + 70) / (3 + 1 + 70 + 5 + 10)
    progress = tracker.update("progress", {"node": "5", "value": 4, "max": 8})
    assert progress is not None
    assert (progress.node_id, progress.class_type, progress.value, progress.max) == (
        "5",
        "VHS_VideoCombine",
        4,
        8,
    )


# --- against the ComfyUI double ------------------------------------------------------------------

JOB_ID = "job-7c1d"
WAIT_S = 20.0  # a deadline for waits, never a sleep


def settings_for(url: str, **overrides: float) -> ComfyUISettings:
    values: dict[str, Any] = {
        "urls": (url,),
        "request_timeout_seconds": 10.0,
        "connect_timeout_seconds": 2.0,
        "quiet_socket_seconds": 30.0,  # tests that need a quiet poll set it short themselves
        "history_retry_seconds": 2.0,
        **overrides,
    }
    return ComfyUISettings(**values)


@pytest.fixture
def client(comfyui: ComfyUIDouble) -> Iterator[ComfyUIClient]:
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as comfy:
        yield comfy


@pytest.fixture
def other_client(comfyui: ComfyUIDouble) -> Iterator[ComfyUIClient]:
    """Another program on the same ComfyUI, with its own client id."""
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as comfy:
        yield comfy


def clip_graph(seed: int = 1, steps: int = 3) -> dict[str, Any]:
    spec = ClipSpec(
        clip_name="c",
        mode=GenerationMode.TEXT_TO_VIDEO,
        prompt="a red fox",
        seed=seed,
        steps=steps,
        frames=8,
        width=64,
        height=64,
        checkpoint="realisticVisionV51_v51VAE.safetensors",
        vae="vae-ft-mse-840000-ema-pruned.safetensors",
        motion_module="mm_sd_v15_v2.ckpt",
    )
    return build_text_to_video(spec, JOB_ID)


class Recorder:
    """Collects progress reports; ``started`` is set by the first one."""

    def __init__(self) -> None:
        self.reports: list[PromptProgress] = []
        self.started = threading.Event()

    def __call__(self, progress: PromptProgress) -> None:
        self.reports.append(progress)
        self.started.set()


def never() -> bool:
    return False


def in_background(function: Callable[[], T]) -> Future[T]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function)
    pool.shutdown(wait=False)
    return future


def wait_for_state(comfy: ComfyUIClient, prompt_id: str, state: PromptState) -> PromptLookup:
    deadline = time.monotonic() + WAIT_S
    while (lookup := comfy.lookup(prompt_id)).state is not state:
        assert time.monotonic() < deadline, f"{prompt_id} stayed {lookup.state}"
        time.sleep(0.02)
    return lookup


def test_success_reports_weighted_progress_and_lists_the_video(
    client: ComfyUIClient, comfyui: ComfyUIDouble, tmp_path: Path
) -> None:
    recorder = Recorder()
    prompt_id = client.queue_prompt(clip_graph(), f"{JOB_ID}-1")
    result = client.follow(prompt_id, recorder, never)

    assert prompt_id == f"{JOB_ID}-1"
    (video,) = result.videos
    assert (video.subfolder, video.type, video.format, video.frame_rate) == (
        f"vidgen/{JOB_ID}",
        "output",
        "video/h264-mp4",
        8.0,
    )
    fractions = [r.fraction for r in recorder.reports]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    steps = [(r.value, r.max) for r in recorder.reports if r.class_type == "KSampler" and r.value]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    after_sampler = next(r for r in recorder.reports if r.class_type == "VAEDecode")
    assert after_sampler.fraction > 0.7  # the sampler weighs most
    received = comfyui.prompts_received[-1]
    assert (received.prompt_id, received.client_id) == (prompt_id, client.client_id)


def test_download_streams_the_output_file(
    client: ComfyUIClient, comfyui: ComfyUIDouble, tmp_path: Path
) -> None:
    result = client.follow(client.queue_prompt(clip_graph(), f"{JOB_ID}-dl"), Recorder(), never)
    (video,) = result.videos
    dest = tmp_path / "clip.mp4.part"

    client.download(video, dest)

    assert dest.read_bytes() == (comfyui.output_dir / video.subfolder / video.filename).read_bytes()
    missing = OutputFile("0", "nothing_00001.mp4", video.subfolder, "output")
    with pytest.raises(ComfyUIError, match="404") as caught:
        client.download(missing, tmp_path / "missing.mp4")
    assert not caught.value.retryable


def test_rejected_graph_names_node_type_input_and_message(
    client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    graph = clip_graph()
    (sampler_id,) = [k for k, v in graph.items() if v["class_type"] == "KSampler"]
    graph[sampler_id]["inputs"]["steps"] = 0

    with pytest.raises(ComfyUIRejected) as caught:
        client.queue_prompt(graph, f"{JOB_ID}-bad")

    assert caught.value.user_message == (
        f"ComfyUI rejected the graph: node {sampler_id} (KSampler), input 'steps': "
        "Value 0 smaller than min of 1"
    )
    assert not caught.value.retryable
    assert client.queue_state().pending == ()


def test_execution_error_says_which_node_failed_and_why(
    client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    comfyui.fail_at("KSampler", "Allocation on device", "torch.OutOfMemoryError")
    prompt_id = client.queue_prompt(clip_graph(), f"{JOB_ID}-oom")

    with pytest.raises(ComfyUIExecutionError) as caught:
        client.follow(prompt_id, Recorder(), never)

    assert "(KSampler): OutOfMemoryError: Allocation on device" in caught.value.user_message
    assert client.lookup(prompt_id).state is PromptState.FAILED


def test_cancel_removes_our_pending_prompt_and_leaves_the_running_one_alone(
    client: ComfyUIClient, other_client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    comfyui.stall()
    theirs = other_client.queue_prompt(clip_graph(seed=1), "theirs")
    comfyui.wait_until_stalling()
    ours = client.queue_prompt(clip_graph(seed=2), "ours")
    assert [e.client_id for e in client.queue_state().pending] == [client.client_id]

    with pytest.raises(ComfyUIInterrupted, match="cancelled"):
        client.follow(ours, Recorder(), lambda: True)

    queue = client.queue_state()
    assert queue.is_running(theirs)
    assert not queue.is_pending(ours)
    comfyui.release()
    assert other_client.follow(theirs, Recorder(), never).videos
    assert client.lookup(ours).state is PromptState.UNKNOWN  # deleted before it ran
    assert [run.prompt_id for run in comfyui.runs] == [theirs]


def test_cancel_interrupts_our_running_prompt_only(
    client: ComfyUIClient, other_client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    comfyui.stall()
    ours = client.queue_prompt(clip_graph(seed=3), "ours")
    comfyui.wait_until_stalling()
    theirs = other_client.queue_prompt(clip_graph(seed=4), "theirs")

    with pytest.raises(ComfyUIInterrupted):
        client.follow(ours, Recorder(), lambda: True)

    assert other_client.follow(theirs, Recorder(), never).videos
    lookup = client.lookup(ours)
    assert lookup.state is PromptState.FAILED
    assert isinstance(lookup.error, ComfyUIInterrupted)


def test_delete_queued_and_interrupt_name_our_prompts(
    client: ComfyUIClient, other_client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    comfyui.stall()
    theirs = other_client.queue_prompt(clip_graph(seed=5), "theirs")
    comfyui.wait_until_stalling()
    first = client.queue_prompt(clip_graph(seed=6), "first")
    second = client.queue_prompt(clip_graph(seed=7), "second")

    client.interrupt(first)  # not running: nothing happens to theirs
    client.delete_queued([first])

    queue = client.queue_state()
    assert [e.prompt_id for e in queue.running] == [theirs]
    assert [e.prompt_id for e in queue.pending] == [second]
    comfyui.release()


def test_a_prompt_queued_ahead_keeps_its_events_until_followed(
    client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    first = client.queue_prompt(clip_graph(seed=8), "first")
    second = client.queue_prompt(clip_graph(seed=9), "second")
    client.follow(first, Recorder(), never)
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as observer:
        wait_for_state(observer, second, PromptState.FINISHED)

    recorder = Recorder()
    client.follow(second, recorder, never)

    steps = [r.value for r in recorder.reports if r.class_type == "KSampler" and r.value]
    assert steps == [1, 2, 3]  # every event arrived while the worker followed the first


def test_dropped_socket_falls_back_to_history(comfyui: ComfyUIDouble) -> None:
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as comfy:
        comfyui.stall()
        recorder = Recorder()
        prompt_id = comfy.queue_prompt(clip_graph(seed=10), "dropped")
        result = in_background(lambda: comfy.follow(prompt_id, recorder, never))
        comfyui.wait_until_stalling()
        assert recorder.started.wait(WAIT_S)
        comfyui.silent_socket = True  # the end of the prompt never reaches the socket
        comfyui.release()
        wait_for_state(comfy, prompt_id, PromptState.FINISHED)

        comfyui.drop_sockets()

        # quiet_socket_seconds is 30: only the dropped socket can have made follow ask /history.
        assert result.result(timeout=WAIT_S).videos
        assert recorder.reports[-1].fraction == 1.0


def test_silent_socket_is_polled(comfyui: ComfyUIDouble) -> None:
    comfyui.silent_socket = True
    settings = settings_for(comfyui.url, quiet_socket_seconds=0.2)
    with ComfyUIClient(comfyui.url, settings) as comfy:
        recorder = Recorder()
        result = comfy.follow(comfy.queue_prompt(clip_graph(seed=11), "silent"), recorder, never)

    assert result.videos
    assert [r.fraction for r in recorder.reports] == [1.0]  # no event came; the poll found it


def test_history_delay_is_waited_out(comfyui: ComfyUIDouble) -> None:
    comfyui.history_delay_seconds = 0.3
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url, history_retry_seconds=5.0)) as comfy:
        result = comfy.follow(comfy.queue_prompt(clip_graph(seed=12), "late"), Recorder(), never)
    assert result.videos


def test_history_later_than_the_retry_is_retryable_and_collected_later(
    comfyui: ComfyUIDouble,
) -> None:
    comfyui.history_delay_seconds = 1.0
    settings = settings_for(comfyui.url, history_retry_seconds=0.1)
    with ComfyUIClient(comfyui.url, settings) as comfy:
        prompt_id = comfy.queue_prompt(clip_graph(seed=13), "later")
        with pytest.raises(ComfyUIUnavailable) as caught:
            comfy.follow(prompt_id, Recorder(), never)
        assert caught.value.retryable
        lookup = wait_for_state(comfy, prompt_id, PromptState.FINISHED)
    assert lookup.result is not None
    assert lookup.result.videos


def test_restart_loses_the_prompt_which_is_retryable(comfyui: ComfyUIDouble) -> None:
    settings = settings_for(comfyui.url, history_retry_seconds=0.3)
    with ComfyUIClient(comfyui.url, settings) as comfy:
        comfyui.stall()
        prompt_id = comfy.queue_prompt(clip_graph(seed=14), "lost")
        result = in_background(lambda: comfy.follow(prompt_id, Recorder(), never))
        comfyui.wait_until_stalling()

        comfyui.restart()

        with pytest.raises(ComfyUIUnavailable, match="restarted") as caught:
            result.result(timeout=WAIT_S)
        assert caught.value.retryable
        assert comfy.lookup(prompt_id).state is PromptState.UNKNOWN


def test_a_restarted_worker_collects_a_prompt_queued_before(
    client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    comfyui.stall()
    prompt_id = client.queue_prompt(clip_graph(seed=15), "before-restart")
    comfyui.wait_until_stalling()
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as restarted:
        assert restarted.lookup(prompt_id).state is PromptState.RUNNING
        comfyui.release()
        # Its events go to the first client's socket; follow asks the server at once instead.
        result = restarted.follow(prompt_id, Recorder(), never)
        assert result.videos
        assert restarted.lookup(prompt_id).state is PromptState.FINISHED


def test_going_away_is_retryable_and_the_prompt_is_collected_after(
    comfyui: ComfyUIDouble,
) -> None:
    with ComfyUIClient(comfyui.url, settings_for(comfyui.url)) as comfy:
        comfyui.stall()
        prompt_id = comfy.queue_prompt(clip_graph(seed=16), "away")
        result = in_background(lambda: comfy.follow(prompt_id, Recorder(), never))
        comfyui.wait_until_stalling()

        comfyui.go_away()

        with pytest.raises(ComfyUIUnavailable, match="unreachable") as caught:
            result.result(timeout=WAIT_S)
        assert isinstance(caught.value.__cause__, Exception)
        comfyui.come_back()
        comfyui.release()
        assert comfy.follow(prompt_id, Recorder(), never).videos


def test_unreachable_backend_raises_comfyui_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    picture = tmp_path / "a.png"
    picture.write_bytes(b"not really a png")
    with ComfyUIClient(url, settings_for(url, connect_timeout_seconds=0.5)) as comfy:
        assert not comfy.is_reachable()
        calls: list[Callable[[], object]] = [
            comfy.system_stats,
            comfy.queue_state,
            lambda: comfy.upload(picture, "a.png"),
            lambda: comfy.queue_prompt(clip_graph(), "nowhere"),
            lambda: comfy.lookup("nowhere"),
        ]
        for call in calls:
            with pytest.raises(ComfyUIUnavailable) as caught:
                call()
            assert caught.value.retryable
            assert caught.value.__cause__ is not None


def test_upload_returns_the_name_comfyui_stored(
    client: ComfyUIClient, comfyui: ComfyUIDouble, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    for path, colour in ((first, "red"), (second, "blue")):
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"color=c={colour}:size=32x32",
                "-frames:v",
                "1",
                f"file:{path}",
            ],
            check=True,
        )
    name = f"{JOB_ID}_ref.png"

    stored = client.upload(first, name)
    again = client.upload(first, name)  # same bytes: the same file
    clash = client.upload(second, name)  # other bytes: ComfyUI picks another name

    assert (stored, again, clash) == (name, name, f"{JOB_ID}_ref (1).png")
    assert (comfyui.input_dir / clash).read_bytes() == second.read_bytes()
    spec = ClipSpec(
        clip_name="c",
        mode=GenerationMode.IMAGE_TO_VIDEO,
        steps=2,
        frames=8,
        width=64,
        height=64,
        checkpoint="realisticVisionV51_v51VAE.safetensors",
        vae="vae-ft-mse-840000-ema-pruned.safetensors",
        motion_module="mm_sd_v15_v2.ckpt",
        ip_adapter="ip-adapter-plus_sd15.safetensors",
        clip_vision="CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    )
    graph = build_image_to_video(spec, JOB_ID, clash)
    assert client.follow(client.queue_prompt(graph, "i2v"), Recorder(), never).videos


def test_upscale_and_interpolate_graphs_run_on_an_uploaded_video(
    client: ComfyUIClient, make_clip: MakeClip, tmp_path: Path
) -> None:
    video = client.upload(make_clip(64, 64, 8, 2.0), f"{JOB_ID}_merged.mp4")
    spec = UpscaleSpec(scale=2, engine=Engine.COMFYUI, model="RealESRGAN_x4plus.pth")
    chunks = plan_chunks(16, 10)
    for chunk in chunks:
        graph = build_upscale(video, spec, chunk, 8.0, JOB_ID)
        result = client.follow(client.queue_prompt(graph, f"up-{chunk.index}"), Recorder(), never)
        client.download(result.videos[0], tmp_path / f"up-{chunk.index}.mp4")
        assert probe(tmp_path / f"up-{chunk.index}.mp4") == (128, 128, chunk.frame_count)

    interpolate = InterpolateSpec(fps=24, engine=Engine.COMFYUI, model="rife47")
    graph = build_interpolate(video, interpolate, 8.0, JOB_ID)
    result = client.follow(client.queue_prompt(graph, "rife"), Recorder(), never)
    client.download(result.videos[0], tmp_path / "rife.mp4")
    assert probe(tmp_path / "rife.mp4") == (64, 64, interpolated_frame_count(16, 3))
    assert result.videos[0].frame_rate == 24.0


def probe(path: Path) -> tuple[int, int, int]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "json",
            f"file:{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["width"]), int(stream["height"]), int(stream["nb_read_frames"])


def test_cached_prompt_still_returns_its_outputs(client: ComfyUIClient) -> None:
    first = client.follow(client.queue_prompt(clip_graph(seed=17), "once"), Recorder(), never)
    recorder = Recorder()
    again = client.follow(client.queue_prompt(clip_graph(seed=17), "twice"), recorder, never)

    assert again.videos == first.videos
    assert again.cached_nodes
    assert not [r for r in recorder.reports if r.class_type == "KSampler"]
    assert recorder.reports[-1].fraction == 1.0


def test_backend_state_is_typed(client: ComfyUIClient, comfyui: ComfyUIDouble) -> None:
    comfyui.set_vram(12 * 2**30, 10 * 2**30)
    comfyui.set_models("upscale_models", ["4x-UltraSharp.pth"])

    stats = client.system_stats()
    installed = client.installed_models()

    assert stats.comfyui_version
    assert [(d.vram_total, d.vram_free) for d in stats.devices] == [(12 * 2**30, 10 * 2**30)]
    assert installed.names(ModelKind.UPSCALE) == ("4x-UltraSharp.pth",)
    assert resolve_model_name("4x-UltraSharp", installed.names(ModelKind.UPSCALE))
    assert "KSampler" in client.object_info()
    assert client.is_reachable()


def test_partly_valid_graph_is_taken_back_and_rejected(
    client: ComfyUIClient, comfyui: ComfyUIDouble
) -> None:
    graph = clip_graph(seed=18)
    graph["98"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0},
    }
    graph["99"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["98", 0], "filename_prefix": "x"},
    }

    comfyui.stall()  # the valid part must not finish before the client takes it back
    with pytest.raises(ComfyUIRejected, match=r"node 98 \(EmptyImage\), input 'width'"):
        client.queue_prompt(graph, "partly")

    assert comfyui.prompts_received[-1].accepted  # ComfyUI queued the valid part...
    deadline = time.monotonic() + WAIT_S
    while (state := client.lookup("partly").state) not in (PromptState.UNKNOWN, PromptState.FAILED):
        assert time.monotonic() < deadline, state  # ...and the client took it back
        time.sleep(0.02)
    assert all(run.status != "success" for run in comfyui.runs)
