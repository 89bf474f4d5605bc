"""The ComfyUI double against the captures of a real ComfyUI 0.3.64 (tests/comfyui_double/captured).

Every test talks to a started double over real sockets (httpx, websockets), as vidgen's client will.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.comfyui_double import ComfyUIDouble

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
    path = double.root_dir / f"src-{width}x{height}.png"
    argv = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}",
        "-frames:v",
        "1",
        str(path),
    ]
    subprocess.run(argv, check=True)
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
