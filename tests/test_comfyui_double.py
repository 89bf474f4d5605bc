"""The ComfyUI double against the captures of a real ComfyUI 0.3.64 (tests/comfyui_double/captured).

Every test talks to a started double over real sockets (httpx, websockets), as vidgen's client will.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.comfyui_double import ComfyUIDouble
from tests.fixtures.media import make_image

CAPTURED = Path(__file__).parent / "comfyui_double" / "captured"
DEADLINE = 20.0
Messages = list[dict[str, Any]]


def captured(name: str) -> Any:
    return json.loads((CAPTURED / f"{name}.json").read_text(encoding="utf-8"))


def wait_for(
    condition: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def post(double: ComfyUIDouble, path: str, body: Any = None) -> httpx.Response:
    return httpx.post(double.url + path, json=body, timeout=DEADLINE)


def get(double: ComfyUIDouble, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(double.url + path, timeout=DEADLINE, **kwargs)


def queue_prompt(
    double: ComfyUIDouble, prompt: dict[str, Any], client_id: str | None = None, **extra: Any
) -> str:
    body: dict[str, Any] = {"prompt": copy.deepcopy(prompt), **extra}
    if client_id is not None:
        body["client_id"] = client_id
    response = post(double, "/prompt", body)
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


def receive_until_done(ws: ClientConnection, prompt_id: str) -> Messages:
    """Text messages up to and including ``executing{node:null}`` of ``prompt_id``."""
    messages: Messages = []
    deadline = time.monotonic() + DEADLINE
    while True:
        raw = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(raw, bytes):
            continue
        message = json.loads(raw)
        messages.append(message)
        data = message["data"]
        if (
            message["type"] == "executing"
            and data.get("node") is None
            and data.get("prompt_id") == prompt_id
        ):
            return messages


def wait_history(double: ComfyUIDouble, prompt_id: str) -> dict[str, Any]:
    def entry() -> dict[str, Any] | None:
        body: dict[str, Any] = get(double, f"/history/{prompt_id}").json()
        return body.get(prompt_id)

    found: dict[str, Any] = wait_for(entry, what=f"history of {prompt_id}")
    return found


def ffprobe(path: Path) -> dict[str, Any]:
    argv = [
        "ffprobe",
        "-v",
        "error",
        "-count_frames",
        "-show_streams",
        "-show_format",
        "-of",
        "json",
        str(path),
    ]
    result = subprocess.run(argv, capture_output=True, check=True, text=True)
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def types(messages: Messages) -> list[str]:
    return [m["type"] for m in messages]


def capture_sequence(name: str, key: str = "messages") -> Messages:
    """Server text messages of a WS capture after the client's POST (the first status dropped)."""
    entries = captured(name)[key]
    after_post = False
    messages = []
    for entry in entries:
        if (
            entry.get("frame", "").startswith("-- client action")
            and "POST /prompt" in entry["action"]
        ):
            after_post = True
        elif after_post and entry.get("frame") == "text":
            messages.append(entry["data"])
    return messages


@pytest.fixture
def ws_client(comfyui: ComfyUIDouble) -> Iterator[ClientConnection]:
    with connect(f"{comfyui.ws_url}?clientId=test-client") as ws:
        first = json.loads(ws.recv(timeout=DEADLINE))
        assert first["type"] == "status"
        assert first["data"]["sid"] == "test-client"
        yield ws


@pytest.fixture
def clip(comfyui: ComfyUIDouble) -> str:
    """A 64x64, 8 fps, 8-frame mp4 uploaded as clip.mp4."""
    path = comfyui.root_dir / "clip-src.mp4"
    source = "testsrc2=size=64x64:rate=8"
    argv = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        source,
        "-frames:v",
        "8",
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    subprocess.run(argv, check=True)
    files = {"image": ("clip.mp4", path.read_bytes(), "video/mp4")}
    response = httpx.post(comfyui.url + "/upload/image", files=files, timeout=DEADLINE)
    assert response.status_code == 200
    name: str = response.json()["name"]
    return name


def upload_png(
    double: ComfyUIDouble, name: str, width: int = 48, height: int = 40, **fields: str
) -> httpx.Response:
    path = make_image(double.root_dir / f"src-{width}x{height}.png", width, height)
    files = {"image": (name, path.read_bytes(), "image/png")}
    return httpx.post(double.url + "/upload/image", files=files, data=fields, timeout=DEADLINE)


# -- POST /prompt validation ---------------------------------------------------------------------

ERROR_CASES = sorted(
    p.stem for p in CAPTURED.glob("prompt_error_*.json") if "malformed" not in p.stem
)


def _strip_tracebacks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<tb>" if k == "traceback" else _strip_tracebacks(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_tracebacks(v) for v in value]
    return value


def _sorted_errors(body: dict[str, Any]) -> dict[str, Any]:
    # The real server walks a set of inputs, so the order of one node's errors is arbitrary.
    for node in body.get("node_errors", {}).values():
        node["errors"].sort(key=lambda e: json.dumps(e, sort_keys=True))
    return body


@pytest.mark.parametrize("case", ERROR_CASES)
def test_prompt_errors_match_captures(comfyui: ComfyUIDouble, clip: str, case: str) -> None:
    capture = captured(case)
    body = copy.deepcopy(capture["request"]["body"])
    if "rife" in case:  # the capture's absolute path existed on the captured machine only
        body["prompt"]["1"]["inputs"]["video"] = str(comfyui.input_dir / clip)
    response = post(comfyui, "/prompt", body)
    assert response.status_code == capture["response"]["status"]
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    expected = _sorted_errors(_strip_tracebacks(capture["response"]["body"]))
    assert _sorted_errors(_strip_tracebacks(response.json())) == expected


def test_malformed_json_is_a_plain_500_and_does_not_count(comfyui: ComfyUIDouble) -> None:
    capture = captured("prompt_error_h_malformed_json")
    raw = capture["request"]["raw_body"]
    response = httpx.post(comfyui.url + "/prompt", content=raw, timeout=DEADLINE)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == capture["response"]["headers"]["Content-Type"]
    assert response.text == capture["response"]["body_text"]
    ok = post(comfyui, "/prompt", captured("prompt_post_success")["request"]["body"])
    assert ok.json()["number"] == 0


def test_success_and_partial_validity(comfyui: ComfyUIDouble) -> None:
    first = post(comfyui, "/prompt", captured("prompt_post_success")["request"]["body"])
    assert first.status_code == 200
    assert first.json()["number"] == 0
    assert first.json()["node_errors"] == {}
    capture = captured("prompt_partial_valid_accepted_with_node_errors")
    partial = post(comfyui, "/prompt", capture["request"]["body"])
    assert partial.status_code == 200
    assert partial.json()["node_errors"] == capture["response"]["body"]["node_errors"]
    assert partial.json()["number"] == 1
    history = wait_history(comfyui, partial.json()["prompt_id"])
    assert history["prompt"][4] == ["2"]  # only the valid output ran


def test_rejected_prompts_count_and_front_is_negative(comfyui: ComfyUIDouble) -> None:
    assert post(comfyui, "/prompt", {"client_id": "x"}).status_code == 400
    assert post(comfyui, "/prompt", {"prompt": {}}).status_code == 400
    upload_png(comfyui, "ref.png")
    upload_png(comfyui, "face.png", subfolder="ipadapter_refs")
    body = captured("prompt_post_custom_prompt_id_front")["request"]["body"]
    response = post(comfyui, "/prompt", body)
    assert response.json() == {
        "prompt_id": "my-own-prompt-id-0001",
        "number": -2,
        "node_errors": {},
    }
    history = wait_history(comfyui, "my-own-prompt-id-0001")
    assert history["prompt"][3] == {**body["extra_data"], "client_id": body["client_id"]}
    received = comfyui.prompts_received
    assert [r.accepted for r in received] == [False, False, True]
    assert received[2].client_id == body["client_id"]


def test_not_installed_model_and_new_style_combo(comfyui: ComfyUIDouble) -> None:
    comfyui.set_models("upscale_models", ["RealESRGAN_x4plus.pth"])
    info = get(comfyui, "/object_info/UpscaleModelLoader").json()
    spec = info["UpscaleModelLoader"]["input"]["required"]["model_name"]
    assert spec == ["COMBO", {"multiselect": False, "options": ["RealESRGAN_x4plus.pth"]}]
    prompt = {
        "1": {
            "class_type": "UpscaleModelLoader",
            "inputs": {"model_name": "RealESRGAN_x4plus_anime_6B.pth"},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    response = post(comfyui, "/prompt", {"prompt": prompt})
    assert response.status_code == 400
    error = response.json()["node_errors"]["1"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert (
        error["details"]
        == "model_name: 'RealESRGAN_x4plus_anime_6B.pth' not in ['RealESRGAN_x4plus.pth']"
    )
    comfyui.set_models("checkpoints", ["mine.safetensors"])
    assert get(comfyui, "/models/checkpoints").json() == ["mine.safetensors"]
    ckpt = get(comfyui, "/object_info/CheckpointLoaderSimple").json()["CheckpointLoaderSimple"]
    assert ckpt["input"]["required"]["ckpt_name"][0] == ["mine.safetensors"]
    rife = get(comfyui, "/object_info/RIFE VFI").json()["RIFE VFI"]["input"]["required"]
    assert "rife47.pth" in rife["ckpt_name"][0]


# -- WebSocket runs ------------------------------------------------------------------------------


def test_success_run_matches_capture(comfyui: ComfyUIDouble, ws_client: ClientConnection) -> None:
    capture = captured("ws_execute_success")
    prompt_id = queue_prompt(comfyui, capture["prompt"], "test-client")
    messages = receive_until_done(ws_client, prompt_id)
    assert types(messages) == types(capture_sequence("ws_execute_success"))
    expected_states = [
        m["data"]["nodes"]
        for m in capture_sequence("ws_execute_success")
        if m["type"] == "progress_state"
    ]
    got_states = [m["data"]["nodes"] for m in messages if m["type"] == "progress_state"]
    assert _without_prompt_ids(got_states) == _without_prompt_ids(expected_states)
    executed = next(m["data"] for m in messages if m["type"] == "executed")
    gif = executed["output"]["gifs"][0]
    expected_gif = next(
        m["data"] for m in capture_sequence("ws_execute_success") if m["type"] == "executed"
    )["output"]["gifs"][0]
    assert {k: v for k, v in gif.items() if k != "fullpath"} == {
        k: v for k, v in expected_gif.items() if k != "fullpath"
    }
    assert gif["fullpath"] == str(comfyui.output_dir / "capture_video_00001.mp4")
    history = wait_history(comfyui, prompt_id)
    expected = captured("history_prompt_vhs_videocombine")["response"]["body"]
    expected_entry = next(iter(expected.values()))
    assert history["prompt"][2] == expected_entry["prompt"][2]  # frame_rate coerced to 8.0
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in expected_entry["status"]["messages"]
    ]
    assert history["meta"] == expected_entry["meta"]


def _without_prompt_ids(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {n: {k: v for k, v in s.items() if k != "prompt_id"} for n, s in nodes.items()}
        for nodes in states
    ]


def test_cached_rerun_matches_capture(comfyui: ComfyUIDouble, ws_client: ClientConnection) -> None:
    prompt = captured("ws_execute_cached")["prompt"]
    first = queue_prompt(comfyui, prompt, "test-client")
    first_messages = receive_until_done(ws_client, first)
    second = queue_prompt(comfyui, prompt, "test-client")
    messages = receive_until_done(ws_client, second)
    assert types(messages) == types(capture_sequence("ws_execute_cached"))
    cached = next(m["data"] for m in messages if m["type"] == "execution_cached")
    assert cached["nodes"] == ["1", "2"]
    old = next(m["data"]["output"] for m in first_messages if m["type"] == "executed")
    assert next(m["data"]["output"] for m in messages if m["type"] == "executed") == old
    state = next(m["data"]["nodes"] for m in messages if m["type"] == "progress_state")
    assert {k: state["2"][k] for k in ("value", "max", "state")} == {
        "value": 1,
        "max": 1,
        "state": "finished",
    }


def test_execution_error_matches_capture(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    capture = captured("ws_execution_error")
    expected_error = next(
        m["data"] for m in capture_sequence("ws_execution_error") if m["type"] == "execution_error"
    )
    comfyui.fail_at(
        "CheckpointLoaderSimple",
        "Error while deserializing header: header too large",
        expected_error["exception_type"],
    )
    prompt_id = queue_prompt(comfyui, capture["prompt"], "test-client")
    messages = receive_until_done(ws_client, prompt_id)
    assert types(messages) == types(capture_sequence("ws_execution_error"))
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert set(error) == set(expected_error)
    for key in (
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "current_inputs",
    ):
        assert error[key] == expected_error[key], key
    assert sorted(error["current_outputs"]) == sorted(expected_error["current_outputs"])
    history = wait_history(comfyui, prompt_id)
    expected = next(iter(captured("history_prompt_execution_error")["response"]["body"].values()))
    assert history["status"]["status_str"] == expected["status"]["status_str"] == "error"
    assert history["status"]["completed"] is False
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in expected["status"]["messages"]
    ]
    assert history["outputs"] == expected["outputs"] == {}


def test_interrupt_matches_capture(comfyui: ComfyUIDouble, ws_client: ClientConnection) -> None:
    capture = captured("ws_execution_interrupted")
    comfyui.stall(at="VHS_VideoCombine")
    prompt_id = queue_prompt(comfyui, capture["prompt"], "test-client")
    comfyui.wait_until_stalling()
    assert post(comfyui, "/interrupt").status_code == 200
    messages = receive_until_done(ws_client, prompt_id)
    progress = {"progress", "progress_state"}
    expected = [t for t in types(capture_sequence("ws_execution_interrupted")) if t not in progress]
    assert [t for t in types(messages) if t not in progress] == expected
    interrupted = next(m["data"] for m in messages if m["type"] == "execution_interrupted")
    assert (interrupted["node_id"], interrupted["node_type"], interrupted["executed"]) == (
        "2",
        "VHS_VideoCombine",
        ["1"],
    )
    history = wait_history(comfyui, prompt_id)
    expected_history = next(
        iter(captured("history_prompt_interrupted")["response"]["body"].values())
    )
    assert history["status"]["status_str"] == "error"
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in expected_history["status"]["messages"]
    ]
    assert history["outputs"] == {}
    assert history["meta"] == {}


# -- outputs -------------------------------------------------------------------------------------


def test_video_combine_writes_real_mp4_and_png(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    prompt = captured("ws_execute_success")["prompt"]
    prompt["1"]["inputs"].update(width=96, height=64, batch_size=12)
    prompt["2"]["inputs"].update(frame_rate=12, filename_prefix="clips/job42")
    prompt_id = queue_prompt(comfyui, prompt, "test-client")
    receive_until_done(ws_client, prompt_id)
    gif = wait_history(comfyui, prompt_id)["outputs"]["2"]["gifs"][0]
    assert (gif["filename"], gif["subfolder"], gif["workflow"]) == (
        "job42_00001.mp4",
        "clips",
        "job42_00001.png",
    )
    video = comfyui.output_dir / "clips" / "job42_00001.mp4"
    stream = ffprobe(video)["streams"][0]
    assert (stream["codec_name"], stream["pix_fmt"], stream["width"], stream["height"]) == (
        "h264",
        "yuv420p",
        96,
        64,
    )
    assert (stream["nb_read_frames"], stream["r_frame_rate"]) == ("12", "12/1")
    assert (comfyui.output_dir / "clips" / "job42_00001.png").stat().st_size > 0
    prompt["1"]["inputs"]["color"] = 1  # a new input: not cached, so the counter moves on
    second = queue_prompt(comfyui, prompt, "test-client")
    receive_until_done(ws_client, second)
    assert wait_history(comfyui, second)["outputs"]["2"]["gifs"][0]["filename"] == "job42_00002.mp4"


@pytest.mark.parametrize("case", ["ffv1_mkv_bgra", "h264_mp4_crf0"])
def test_lossless_intermediates_match_capture(
    comfyui: ComfyUIDouble, ws_client: ClientConnection, case: str
) -> None:
    """The formats vidgen may write between ComfyUI stages: the file's codec, pixel format and
    profile as the real VHS wrote them, and the same output entry."""
    capture = captured("vhs_lossless_formats")["cases"][case]
    prompt_id = queue_prompt(comfyui, capture["request"]["body"]["prompt"], "test-client")
    receive_until_done(ws_client, prompt_id)
    history = wait_history(comfyui, prompt_id)
    expected = capture["history"]
    assert history["prompt"][2] == expected["prompt"][2]
    (gif,) = history["outputs"]["2"]["gifs"]
    (want,) = expected["outputs"]["2"]["gifs"]
    assert {k: v for k, v in gif.items() if k != "fullpath"} == {
        k: v for k, v in want.items() if k != "fullpath"
    }
    stream = ffprobe(comfyui.output_dir / gif["filename"])["streams"][0]
    keys = ("codec_name", "profile", "pix_fmt", "width", "height", "nb_read_frames")
    assert {k: stream.get(k) for k in keys} == {k: capture["ffprobe"].get(k) for k in keys}


def t2v_prompt() -> dict[str, Any]:
    prompt: dict[str, Any] = captured("real_run_t2v_animatediff_cold")["prompt"]
    return prompt


def test_t2v_graph_runs_in_the_real_node_order(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    capture = captured("real_run_t2v_animatediff_cold")
    prompt_id = queue_prompt(comfyui, t2v_prompt(), "test-client")
    messages = receive_until_done(ws_client, prompt_id)
    expected_order = [
        m["data"]["node"] for m in capture_sequence_real(capture) if m["type"] == "executing"
    ]
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == expected_order
    assert types(messages) == types(capture_sequence_real(capture))
    steps = [m["data"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "13"]
    assert [(s["value"], s["max"]) for s in steps] == [(1, 2), (2, 2)]
    video = comfyui.output_dir / "bench_t2v16_cold_00001.mp4"
    stream = ffprobe(video)["streams"][0]
    expected = capture["outputs"][0]["ffprobe"]["streams"][0]
    for key in ("codec_name", "width", "height", "pix_fmt", "r_frame_rate", "nb_read_frames"):
        assert stream[key] == expected[key], key
    assert ffprobe(video)["format"]["duration"] == "1.000000"


def capture_sequence_real(capture: dict[str, Any]) -> Messages:
    """Text messages of a real-run capture after its POST (previews are off by default)."""
    messages = []
    after_post = False
    for entry in capture["ws_messages"]:
        if "client action" in entry.get("frame", ""):
            after_post = True
        elif after_post and entry.get("frame") == "text":
            messages.append(entry["data"])
    return messages


def test_warm_run_caches_unchanged_nodes(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    first = queue_prompt(comfyui, t2v_prompt(), "test-client")
    receive_until_done(ws_client, first)
    prompt = t2v_prompt()
    prompt["13"]["inputs"]["seed"] = 2
    second = queue_prompt(comfyui, prompt, "test-client")
    messages = receive_until_done(ws_client, second)
    cached = next(m["data"]["nodes"] for m in messages if m["type"] == "execution_cached")
    assert sorted(cached, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12"]
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == [
        "13",
        "14",
        "15",
        None,
    ]


def upscale_prompt(clip: str, model: str = "RealESRGAN_x4plus.pth") -> dict[str, Any]:
    load = {"video": clip, "force_rate": 0, "custom_width": 0, "custom_height": 0}
    load |= {"frame_load_cap": 0, "skip_first_frames": 0, "select_every_nth": 1}
    combine = {
        "frame_rate": 8,
        "loop_count": 0,
        "filename_prefix": "up",
        "format": "video/h264-mp4",
    }
    combine |= {"pingpong": False, "save_output": True}
    return {
        "1": {"class_type": "VHS_LoadVideo", "inputs": load},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["3", 0], **combine}},
    }


def test_upscale_graph_writes_4x_frames(
    comfyui: ComfyUIDouble, ws_client: ClientConnection, clip: str
) -> None:
    prompt_id = queue_prompt(comfyui, upscale_prompt(clip), "test-client")
    messages = receive_until_done(ws_client, prompt_id)
    progress = [
        (m["data"]["node"], m["data"]["value"], m["data"]["max"])
        for m in messages
        if m["type"] == "progress"
    ]
    for node in ("1", "3", "4"):  # loader per frame, upscale per tile x frame, combine per frame
        assert [p[1:] for p in progress if p[0] == node] == [(k, 8) for k in range(1, 9)]
    stream = ffprobe(comfyui.output_dir / "up_00001.mp4")["streams"][0]
    assert (stream["width"], stream["height"], stream["nb_read_frames"]) == (256, 256, "8")


def test_rife_and_loader_options_shape_the_output(
    comfyui: ComfyUIDouble, ws_client: ClientConnection, clip: str
) -> None:
    prompt = upscale_prompt(clip)
    rife = {
        "ckpt_name": "rife47.pth",
        "frames": ["1", 0],
        "clear_cache_after_n_frames": 10,
        "multiplier": 3,
    }
    rife |= {"fast_mode": True, "ensemble": True, "scale_factor": 1.0, "dtype": "float32"}
    rife |= {"torch_compile": False, "batch_size": 1}
    prompt["3"] = {"class_type": "RIFE VFI", "inputs": rife}
    prompt["4"]["inputs"].update(frame_rate=24, filename_prefix="rife")
    prompt_id = queue_prompt(comfyui, prompt, "test-client")
    messages = receive_until_done(ws_client, prompt_id)
    assert not [m for m in messages if m["type"] == "progress" and m["data"]["node"] == "3"]
    info = ffprobe(comfyui.output_dir / "rife_00001.mp4")
    assert (info["streams"][0]["nb_read_frames"], info["streams"][0]["r_frame_rate"]) == (
        "22",
        "24/1",
    )
    assert info["format"]["duration"] == "0.917000"
    prompt = upscale_prompt(clip)
    prompt["1"]["inputs"].update(skip_first_frames=2, select_every_nth=2, custom_width=32)
    prompt["3"] = {
        "class_type": "ImageScaleBy",
        "inputs": {"image": ["1", 0], "upscale_method": "area", "scale_by": 1.5},
    }
    prompt["4"]["inputs"]["filename_prefix"] = "small"
    receive_until_done(ws_client, queue_prompt(comfyui, prompt, "test-client"))
    stream = ffprobe(comfyui.output_dir / "small_00001.mp4")["streams"][0]
    assert (stream["width"], stream["height"], stream["nb_read_frames"]) == (48, 48, "3")


def test_load_image_scale_and_save_image(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    upload_png(comfyui, "ref.png", 48, 40)
    upload_png(comfyui, "face.png", 48, 40, subfolder="ipadapter_refs")
    prompt = captured("prompt_post_custom_prompt_id_front")["request"]["body"]["prompt"]
    prompt_id = queue_prompt(comfyui, prompt, "test-client")
    receive_until_done(ws_client, prompt_id)
    outputs = wait_history(comfyui, prompt_id)["outputs"]
    assert outputs["3"] == {
        "images": [{"filename": "img_00001_.png", "subfolder": "capture", "type": "output"}]
    }
    preview = outputs["6"]["images"][0]
    assert preview["type"] == "temp"
    assert preview["filename"].startswith("ComfyUI_temp_")
    assert preview["filename"].endswith("_00001_.png")
    saved = ffprobe(comfyui.output_dir / "capture" / "img_00001_.png")["streams"][0]
    assert (saved["width"], saved["height"]) == (160, 128)
    shown = ffprobe(comfyui.temp_dir / preview["filename"])["streams"][0]
    assert (shown["width"], shown["height"]) == (24, 20)
    loaded = {"1": {"class_type": "LoadImage", "inputs": {"image": "ref.png [input]"}}}
    loaded["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    assert post(comfyui, "/prompt", {"prompt": loaded}).status_code == 200


# -- queue and history ---------------------------------------------------------------------------


def test_queue_operations_replay_the_capture(comfyui: ComfyUIDouble) -> None:
    capture = captured("queue_operations")
    ids: dict[str, str] = {}
    numbers: dict[int, int] = {}
    comfyui.stall(at="VHS_VideoCombine")
    for operation in capture["operations"]:
        request, expected = operation["request"], operation["response"]
        if "interrupt of running" in operation["label"]:
            running = capture["prompt_ids"][0]
            wait_for(lambda: comfyui.is_stalling, what="a stall")
            response = post(comfyui, "/interrupt", {"prompt_id": ids[running]})
            comfyui.stall(at="VHS_VideoCombine")  # hold the next prompt too
            assert response.status_code == 200
            continue
        if "queue before clear" in operation["label"] or "at end" in operation["label"]:
            _wait_queue(comfyui, expected["body"], ids, numbers, operation["label"])
            continue
        response = _replay(comfyui, request, ids)
        assert response.status_code == expected["status"], operation["label"]
        if request["method"] == "POST" and request["path"] == "/prompt":
            ids[expected["body"]["prompt_id"]] = response.json()["prompt_id"]
            numbers[expected["body"]["number"]] = response.json()["number"]
        elif "body" in expected and request["path"] == "/queue":
            assert _queue_matches(comfyui, expected["body"], ids, numbers, response.json())
        elif "body" in expected:
            assert response.json() == expected["body"], operation["label"]
        else:
            assert response.content == b""
    assert wait_history(comfyui, ids[capture["prompt_ids"][0]])["status"]["status_str"] == "error"
    assert get(comfyui, f"/history/{ids[capture['prompt_ids'][2]]}").json() == {}


def _replay(double: ComfyUIDouble, request: dict[str, Any], ids: dict[str, str]) -> httpx.Response:
    if request["method"] == "GET":
        return get(double, request["path"])
    body = json.loads(json.dumps(request.get("body")))
    if "delete" in (body or {}):
        body["delete"] = [ids[i] for i in body["delete"]]
    return post(double, request["path"], body)


def _wait_queue(
    double: ComfyUIDouble,
    body: dict[str, Any],
    ids: dict[str, str],
    numbers: dict[int, int],
    label: str,
) -> None:
    wait_for(lambda: _queue_matches(double, body, ids, numbers), what=label)


def _queue_matches(
    double: ComfyUIDouble,
    expected: dict[str, Any],
    ids: dict[str, str],
    numbers: dict[int, int],
    got: Any = None,
) -> bool:
    body = got if got is not None else get(double, "/queue").json()
    translate = [[numbers[i[0]], ids[i[1]], i[2], i[3], i[4]] for i in expected["queue_running"]]
    pending = sorted(
        [[numbers[i[0]], ids[i[1]], i[2], i[3], i[4]] for i in expected["queue_pending"]]
    )
    return bool(
        _strip_client(body["queue_running"]) == _strip_client(translate)
        and _strip_client(sorted(body["queue_pending"])) == _strip_client(pending)
    )


def _strip_client(items: list[list[Any]]) -> list[list[Any]]:
    """Queue items without client ids (the capture's ids were random per session)."""
    return [
        [i[0], i[1], i[2], {k: v for k, v in i[3].items() if k != "client_id"}, i[4]] for i in items
    ]


def test_history_paging_delete_and_clear(comfyui: ComfyUIDouble) -> None:
    prompt = captured("ws_execute_success")["prompt"]
    ids = []
    for color in range(3):
        prompt["1"]["inputs"]["color"] = color
        ids.append(queue_prompt(comfyui, prompt))
    wait_history(comfyui, ids[-1])
    assert list(get(comfyui, "/history").json()) == ids
    assert list(get(comfyui, "/history?max_items=1").json()) == ids[2:]
    assert list(get(comfyui, "/history?max_items=2&offset=1").json()) == ids[1:]
    assert get(comfyui, "/history/00000000-0000-0000-0000-000000000000").json() == {}
    response = post(comfyui, "/history", {"delete": [ids[0]]})
    assert (response.status_code, response.content) == (200, b"")
    assert get(comfyui, f"/history/{ids[0]}").json() == {}
    post(comfyui, "/history", {"clear": True})
    assert get(comfyui, "/api/history").json() == {}


def test_queued_and_running_prompts_have_no_history_yet(comfyui: ComfyUIDouble) -> None:
    comfyui.stall()
    running = queue_prompt(comfyui, captured("ws_execute_success")["prompt"], "a")
    comfyui.wait_until_stalling()
    pending = queue_prompt(comfyui, captured("ws_execute_cached")["prompt"] | {}, "b", front=True)
    assert get(comfyui, "/prompt").json() == {"exec_info": {"queue_remaining": 2}}
    queue = get(comfyui, "/queue").json()
    assert [i[1] for i in queue["queue_running"]] == [running]
    assert [(i[1], i[3], i[4]) for i in queue["queue_pending"]] == [
        (pending, {"client_id": "b"}, ["2"])
    ]
    assert get(comfyui, f"/history/{running}").json() == {}
    assert get(comfyui, f"/history/{pending}").json() == {}
    comfyui.release()
    wait_history(comfyui, pending)


# -- files ---------------------------------------------------------------------------------------


def test_upload_cases_match_capture(comfyui: ComfyUIDouble) -> None:
    cases = captured("upload_image")
    a, b = b"\x89PNG first", b"\x89PNG second"

    def upload(data: bytes, name: str = "ref.png", **fields: str) -> httpx.Response:
        files = {"image": (name, data, "image/png")}
        return httpx.post(comfyui.url + "/upload/image", files=files, data=fields, timeout=DEADLINE)

    def expect(response: httpx.Response, case: str) -> None:
        assert response.status_code == cases[case]["response"]["status"], case
        assert response.json() == cases[case]["response"]["body"], case

    expect(upload(a), "1_new_file")
    expect(upload(b), "2_same_name_different_content_no_overwrite")
    expect(upload(a), "3_same_name_identical_content_no_overwrite")
    expect(upload(b + b"!", overwrite="true"), "4_same_name_different_content_overwrite_true")
    assert (comfyui.input_dir / "ref.png").read_bytes() == b + b"!"
    expect(upload(a, "face.png", subfolder="ipadapter_refs", type="input"), "5_subfolder")
    expect(upload(a, "tmp_ref.png", type="temp"), "6_type_temp")
    missing = httpx.post(
        comfyui.url + "/upload/image", data={"overwrite": "true"}, files={"x": ("x", b"")}
    )
    assert (missing.status_code, missing.content) == (400, b"")
    escape = upload(a, "x.png", subfolder="../../etc")
    assert (escape.status_code, escape.content) == (400, b"")
    expect(upload(b"\x00\x00\x00 ftyp", "clip.mp4"), "9_video_file_for_VHS_LoadVideo")
    load_image = get(comfyui, "/object_info/LoadImage").json()
    assert load_image == captured("get_object_info_LoadImage_after_upload")["response"]["body"] | {
        "LoadImage": load_image["LoadImage"]
        | {"input": {"required": {"image": [["ref (1).png", "ref.png"], {"image_upload": True}]}}}
    }
    video = get(comfyui, "/object_info/VHS_LoadVideo").json()["VHS_LoadVideo"]
    assert video["input"]["required"]["video"][0] == ["clip.mp4"]


def test_view_serves_ranges_head_and_refuses_escapes(comfyui: ComfyUIDouble) -> None:
    cases = captured("view_responses")
    (comfyui.output_dir / "capture_video_00001.mp4").write_bytes(
        bytes(range(256)) * 9
    )  # 2304 bytes
    base = comfyui.url + "/view?filename=capture_video_00001.mp4&subfolder=&type=output"
    full = httpx.get(base)
    for header in ("Content-Disposition", "Content-Type", "Content-Length", "Accept-Ranges"):
        assert full.headers[header] == cases["mp4_full"]["response"]["headers"][header]
    assert "ETag" in full.headers
    assert "Last-Modified" in full.headers
    for case, header in (("mp4_range_0_99", "bytes=0-99"), ("mp4_range_100_open", "bytes=100-")):
        part = httpx.get(base, headers={"Range": header})
        expected = cases[case]["response"]
        assert part.status_code == expected["status"] == 206
        assert part.headers["Content-Range"] == expected["headers"]["Content-Range"]
        assert len(part.content) == expected["body_bytes_len"]
    head = httpx.head(base)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "2304", b"")
    for case in ("missing_file", "path_traversal", "unknown_type"):
        response = httpx.get(comfyui.url + cases[case]["request"]["path"])
        assert (response.status_code, response.content) == (cases[case]["response"]["status"], b"")
    assert (
        httpx.get(comfyui.url + "/view?filename=x.mp4&subfolder=../..&type=output").status_code
        == 403
    )


def test_catalogue_routes(comfyui: ComfyUIDouble) -> None:
    stats = get(comfyui, "/system_stats").json()
    expected = captured("get_system_stats")["response"]["body"]
    assert set(stats["system"]) == set(expected["system"])
    assert set(stats["devices"][0]) == set(expected["devices"][0])
    comfyui.set_vram(12_000_000_000, 3_000_000_000)
    device = get(comfyui, "/api/system_stats").json()["devices"][0]
    assert (device["vram_total"], device["vram_free"]) == (12_000_000_000, 3_000_000_000)
    assert get(comfyui, "/features").json() == captured("get_features")["response"]["body"]
    assert get(comfyui, "/models").json() == captured("get_models_list")["response"]["body"]
    unknown = get(comfyui, "/models/no_such_folder")
    assert (unknown.status_code, unknown.content) == (404, b"")
    assert get(comfyui, "/object_info/NoSuchNode").json() == {}
    everything = get(comfyui, "/api/object_info").json()
    assert len(everything) == 271
    assert everything["VHS_VideoCombine"]["output_node"] is True
    assert post(comfyui, "/free", {"unload_models": True, "free_memory": True}).content == b""


# -- WebSocket routing ---------------------------------------------------------------------------


def test_socket_without_client_id_and_feature_flags(comfyui: ComfyUIDouble) -> None:
    with connect(comfyui.ws_url) as ws:
        first = json.loads(ws.recv(timeout=DEADLINE))
        assert len(first["data"]["sid"]) == 32
        assert int(first["data"]["sid"], 16) >= 0
    handshake = captured("ws_feature_flags_handshake")
    with connect(f"{comfyui.ws_url}?clientId=flags") as ws:
        ws.recv(timeout=DEADLINE)
        ws.send(json.dumps(handshake["client_sent_first"]))
        assert json.loads(ws.recv(timeout=DEADLINE)) == handshake["messages"][1]["data"]


def test_prompt_without_client_id_sends_only_broadcasts(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    capture = captured("ws_prompt_without_client_id")
    prompt_id = queue_prompt(comfyui, capture["prompt"])
    expected = types(capture_sequence("ws_prompt_without_client_id"))
    got: Messages = []
    while len(got) < len(expected):
        got.append(json.loads(ws_client.recv(timeout=DEADLINE)))
    assert types(got) == expected
    assert wait_history(comfyui, prompt_id)["status"]["status_str"] == "success"


def test_new_socket_replaces_old_and_gets_the_running_node(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    capture = captured("ws_reconnect_same_clientId_during_execution")
    comfyui.stall(at="VHS_VideoCombine")
    prompt_id = queue_prompt(comfyui, captured("ws_execute_success")["prompt"], "test-client")
    comfyui.wait_until_stalling()
    with connect(f"{comfyui.ws_url}?clientId=test-client") as second:
        first_two = [json.loads(second.recv(timeout=DEADLINE)) for _ in range(2)]
        expected = [m["data"] for m in capture["new_socket_messages"][:2]]
        assert first_two[0]["data"]["sid"] == "test-client"
        assert first_two[1] == expected[1] == {"type": "executing", "data": {"node": "2"}}
        _drain(ws_client)
        comfyui.release()
        receive_until_done(second, prompt_id)
        with pytest.raises(TimeoutError):
            ws_client.recv(timeout=0.3)  # the replaced socket gets nothing more


def _drain(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        _receive_forever(ws, 0.2)


def _receive_forever(ws: ClientConnection, timeout: float) -> None:
    """Read until the socket fails: TimeoutError when quiet, ConnectionClosed when cut."""
    while True:
        ws.recv(timeout=timeout)


# -- test controls -------------------------------------------------------------------------------


def sampler_prompt(steps: int, seed: int = 0) -> dict[str, Any]:
    prompt = t2v_prompt()
    prompt["13"]["inputs"].update(steps=steps, seed=seed)
    return prompt


def test_step_seconds_sets_sampler_time(comfyui: ComfyUIDouble) -> None:
    comfyui.step_seconds = 0.05
    prompt_id = queue_prompt(comfyui, sampler_prompt(10))
    wait_history(comfyui, prompt_id)
    run = comfyui.runs[0]
    assert run.ended_at is not None
    assert run.ended_at - run.started_at >= 0.5
    assert run.status == "success"


def test_fail_at_node_id_and_times(comfyui: ComfyUIDouble) -> None:
    comfyui.fail_at("13", "CUDA error: out of memory", "torch.OutOfMemoryError", times=1)
    failed = queue_prompt(comfyui, sampler_prompt(2))
    error = wait_history(comfyui, failed)["status"]["messages"][-1]
    assert error[0] == "execution_error"
    assert (error[1]["node_id"], error[1]["node_type"]) == ("13", "KSampler")
    assert error[1]["exception_message"] == "CUDA error: out of memory\n"
    assert error[1]["current_inputs"]["steps"] == [2]
    ok = queue_prompt(comfyui, sampler_prompt(2))
    assert wait_history(comfyui, ok)["status"]["status_str"] == "success"


def test_stall_and_release(comfyui: ComfyUIDouble) -> None:
    comfyui.stall()
    prompt_id = queue_prompt(comfyui, sampler_prompt(2))
    comfyui.wait_until_stalling()
    time.sleep(0.1)  # a stalled prompt stays put; nothing to wait for but time
    assert get(comfyui, f"/history/{prompt_id}").json() == {}
    assert get(comfyui, "/queue").json()["queue_running"][0][1] == prompt_id
    comfyui.release()
    assert wait_history(comfyui, prompt_id)["status"]["completed"] is True


def test_drop_sockets_cuts_clients_but_prompts_go_on(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    from websockets.exceptions import ConnectionClosed

    comfyui.stall()
    prompt_id = queue_prompt(comfyui, sampler_prompt(2), "test-client")
    comfyui.wait_until_stalling()
    comfyui.drop_sockets()
    with pytest.raises(ConnectionClosed):
        _receive_forever(ws_client, DEADLINE)
    with connect(f"{comfyui.ws_url}?clientId=test-client") as again:
        json.loads(again.recv(timeout=DEADLINE))
        comfyui.release()
        assert types(receive_until_done(again, prompt_id))[-3:] == [
            "execution_success",
            "status",
            "executing",
        ]


def test_silent_socket_sends_nothing_while_history_fills(comfyui: ComfyUIDouble) -> None:
    comfyui.silent_socket = True
    with connect(f"{comfyui.ws_url}?clientId=quiet") as ws:
        prompt_id = queue_prompt(comfyui, sampler_prompt(2), "quiet")
        assert wait_history(comfyui, prompt_id)["status"]["status_str"] == "success"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_history_delay_keeps_the_prompt_running_after_success(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    comfyui.history_delay_seconds = 1.0
    prompt_id = queue_prompt(comfyui, sampler_prompt(2), "test-client")
    while json.loads(ws_client.recv(timeout=DEADLINE))["type"] != "execution_success":
        pass
    assert get(comfyui, f"/history/{prompt_id}").json() == {}
    assert get(comfyui, "/queue").json()["queue_running"][0][1] == prompt_id
    receive_until_done(ws_client, prompt_id)
    assert wait_history(comfyui, prompt_id)["status"]["status_str"] == "success"


def test_restart_loses_queue_history_and_sockets_but_keeps_files(
    comfyui: ComfyUIDouble, ws_client: ClientConnection
) -> None:
    from websockets.exceptions import ConnectionClosed

    done = queue_prompt(comfyui, captured("ws_execute_success")["prompt"], "test-client")
    receive_until_done(ws_client, done)
    comfyui.stall()
    running = queue_prompt(comfyui, sampler_prompt(2), "test-client")
    comfyui.wait_until_stalling()
    pending = queue_prompt(comfyui, sampler_prompt(3), "test-client")
    comfyui.restart()
    with pytest.raises(ConnectionClosed):
        _receive_forever(ws_client, DEADLINE)
    assert get(comfyui, "/queue").json() == {"queue_running": [], "queue_pending": []}
    for prompt_id in (done, running, pending):
        assert get(comfyui, f"/history/{prompt_id}").json() == {}
    assert (comfyui.output_dir / "capture_video_00001.mp4").is_file()
    assert post(comfyui, "/prompt", {"prompt": sampler_prompt(2)}).json()["number"] == 0
    assert [r.status for r in comfyui.runs][:2] == ["success", "lost"]


def test_go_away_refuses_connections_then_comes_back_on_the_same_port(
    comfyui: ComfyUIDouble,
) -> None:
    port = comfyui.port
    comfyui.go_away()
    with pytest.raises(httpx.ConnectError):
        get(comfyui, "/system_stats")
    comfyui.come_back()
    assert comfyui.port == port
    assert get(comfyui, "/system_stats").status_code == 200


def test_observations_record_runs_and_gaps(comfyui_factory: Callable[..., ComfyUIDouble]) -> None:
    first, second = comfyui_factory(), comfyui_factory()
    assert first.port != second.port
    ids = [queue_prompt(first, sampler_prompt(2, seed)) for seed in range(3)]
    wait_history(first, ids[-1])
    assert first.max_running == 1
    assert first.max_queue_remaining >= 1
    assert [r.prompt_id for r in first.runs] == ids
    assert len(first.idle_gaps()) == 2
    assert all(gap >= 0 for gap in first.idle_gaps())
    assert second.runs == []


def test_runs_as_a_process_driven_over_http(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tests.comfyui_double", "--port", "0", "--root", str(tmp_path)]
    with subprocess.Popen(
        argv, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True
    ) as process:
        _drive_process(process)


def _drive_process(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().removeprefix("listening on ")
        controls = httpx.post(url + "/__double__/controls", json={"step_seconds": 0.001}).json()
        assert controls["step_seconds"] == 0.001
        httpx.post(url + "/__double__/fail_at", json={"target": "KSampler", "message": "boom"})
        prompt_id = httpx.post(url + "/prompt", json={"prompt": sampler_prompt(2)}).json()[
            "prompt_id"
        ]
        wait_for(lambda: httpx.get(f"{url}/history/{prompt_id}").json(), what="history")
        observed = httpx.get(url + "/__double__/observations").json()
        assert [r["status"] for r in observed["runs"]] == ["error"]
        httpx.post(url + "/__double__/go_away", json={"seconds": 0.5})
        wait_for(lambda: _refused(url), what="the double to go away")
        wait_for(lambda: not _refused(url), what="the double to come back")
    finally:
        process.terminate()
        assert process.wait(timeout=DEADLINE) == 0


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/prompt", timeout=1.0)
    except (httpx.ConnectError, httpx.RemoteProtocolError):
        # Refused, or (while the server is closing) accepted and dropped without an answer.
        return True
    return False


GRAPHS = sorted(p.stem for p in CAPTURED.glob("graph_*.json"))


@pytest.mark.parametrize("graph", GRAPHS)
def test_captured_graphs_validate_and_run(comfyui: ComfyUIDouble, clip: str, graph: str) -> None:
    for name in ("ref.png", "example.png"):
        upload_png(comfyui, name)
    upload_png(comfyui, "face.png", subfolder="ipadapter_refs")
    capture = captured(graph)
    text = json.dumps(capture["request"]["body"]["prompt"]).replace(
        "/opt/ComfyUI/input/", f"{comfyui.input_dir}/"
    )
    response = post(comfyui, "/prompt", {"prompt": json.loads(text)})
    assert response.status_code == capture["response"]["status"] == 200
    history = wait_history(comfyui, response.json()["prompt_id"])
    assert history["status"]["status_str"] == "success"
    for output in history["outputs"].values():
        for item in output.get("gifs", []) + output.get("images", []):
            folder = comfyui.root_dir / item["type"] / item["subfolder"]
            assert (folder / item["filename"]).stat().st_size > 0


@pytest.mark.parametrize(
    ("video_format", "ext", "codec"),
    [("video/webm", "webm", "vp9"), ("image/gif", "gif", "gif"), ("video/h265-mp4", "mp4", "hevc")],
)
def test_other_formats_write_matching_containers(
    comfyui: ComfyUIDouble, video_format: str, ext: str, codec: str
) -> None:
    prompt = captured("ws_execute_success")["prompt"]
    prompt["1"]["inputs"].update(batch_size=4)
    prompt["2"]["inputs"].update(format=video_format, save_output=False)
    history = wait_history(comfyui, queue_prompt(comfyui, prompt))
    gif = history["outputs"]["2"]["gifs"][0]
    assert (gif["filename"], gif["type"], gif["format"]) == (
        f"capture_video_00001.{ext}",
        "temp",
        video_format,
    )
    stream = ffprobe(comfyui.temp_dir / gif["filename"])["streams"][0]
    assert (stream["codec_name"], stream["nb_read_frames"]) == (codec, "4")
