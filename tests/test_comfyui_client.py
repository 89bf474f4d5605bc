"""The ComfyUI client: parsing of ComfyUI's answers, progress, and (against the double) the API."""

from __future__ import annotations

from typing import Any

from vidgen.errors import ComfyUIExecutionError, ComfyUIInterrupted
from workflows.comfyui_types import (
    PromptState,
    describe_rejection,
    parse_history_item,
    parse_queue,
    parse_system_stats,
)
from workflows.progress import ProgressTracker

# --- parsing, on the shapes of the captures in comfyui/examples ----------------------------------


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
