"""Reading manifests as intake does: every rejection with its message and line, the defaults
applied, and thousands of generated and mutated manifests that never crash validation."""

from __future__ import annotations

import os
import string
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.fixtures.media import MakeClip, png_bytes
from vidgen.config import Settings, load_settings
from vidgen.specs import Engine, GenerationMode, InstalledModels, ModelKind, TransitionType
from watcher.docs import render
from watcher.manifest import CancelRequest, Manifest, ValidationResult, check_file

PNG = png_bytes()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        {},
        overrides={
            "storage": str(tmp_path / "storage"),
            "outbox": str(tmp_path / "outbox"),
            "inboxes": [{"path": str(tmp_path / "inbox")}],
        },
    )


def check(
    inbox: Path,
    settings: Settings,
    text: str | bytes,
    name: str = "trip.yaml",
    catalogue: InstalledModels | None = None,
) -> ValidationResult:
    path = inbox / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return check_file(path, settings, (lambda: catalogue) if catalogue is not None else None)


def errors(result: ValidationResult) -> list[str]:
    assert result.manifest is None
    return result.format().splitlines()


def accepted(result: ValidationResult) -> Manifest:
    assert result.problems == (), result.format()
    assert isinstance(result.manifest, Manifest)
    return result.manifest


def test_one_line_manifest_gets_every_default(inbox: Path, plain_settings: Settings) -> None:
    manifest = accepted(check(inbox, plain_settings, "prompt: a red fox running through snow\n"))
    assert (manifest.display_name, manifest.project_name) == ("trip", "trip")
    assert (manifest.resolution, manifest.frame_rate) == ("512x512", 8)
    (clip,) = manifest.clips
    assert clip.seed is None
    assert clip.spec.mode is GenerationMode.TEXT_TO_VIDEO
    assert clip.spec.checkpoint == "realisticVisionV51_v51VAE.safetensors"
    assert (clip.spec.frames, clip.spec.steps, clip.spec.cfg) == (16, 20, 7.5)
    assert clip.spec.negative_prompt == "blurry, low quality, watermark"
    assert manifest.export.deliver_as_is


def test_full_manifest_applies_defaults_then_clip_values(
    inbox: Path, plain_settings: Settings
) -> None:
    (inbox / "refs").mkdir()
    (inbox / "refs" / "girl.png").write_bytes(PNG)
    text = """\
project: Summer Trip
resolution: 768x432
defaults:
  negativePrompt: blurry
  steps: 25
  checkpoint: realisticVisionV51_v51VAE
clips:
  - prompt: waves at golden hour
    seed: 18446744073709551615
  - prompt: a girl smiling
    image: refs/girl.png
    steps: 30
    name: girl
export:
  transition: { type: wipe, duration: 0.5, direction: up }
  upscale: { scale: 2, engine: ffmpeg }
  format: webm
  quality: high
"""
    manifest = accepted(check(inbox, plain_settings, text))
    assert (manifest.project_name, manifest.resolution) == ("summerTrip", "768x432")
    first, second = manifest.clips
    assert first.seed == 2**64 - 1
    assert first.spec.seed == 2**64 - 1
    assert first.spec.steps == 25
    assert second.spec.steps == 30
    assert first.spec.checkpoint == "realisticVisionV51_v51VAE.safetensors"
    assert second.spec.mode is GenerationMode.IMAGE_TO_VIDEO
    assert second.spec.clip_name == "girl"
    assert second.source == inbox / "refs" / "girl.png"
    assert manifest.export.transition.type is TransitionType.WIPE
    assert manifest.export.transition.direction == "up"
    assert manifest.export.upscale is not None
    assert manifest.export.upscale.engine is Engine.FFMPEG
    assert not manifest.export.deliver_as_is


def test_several_clips_without_export_are_joined_plainly(
    inbox: Path, plain_settings: Settings
) -> None:
    manifest = accepted(check(inbox, plain_settings, "clips:\n  - prompt: a\n  - prompt: b\n"))
    assert not manifest.export.deliver_as_is
    assert manifest.export.transition.type is TransitionType.NONE
    assert (manifest.export.format.value, manifest.export.quality.value) == ("mp4", "standard")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "prompt: a\nfrmaes: 16\n",
            "trip.yaml:2: frmaes: unknown key 'frmaes' (did you mean 'frames'?)",
        ),
        ("promt: a fox\n", "trip.yaml:1: promt: unknown key 'promt' (did you mean 'prompt'?)"),
        ("prompt: a\nframes: 3\n", "trip.yaml:2: frames: must be at least 8, got 3"),
        ("prompt: a\nframes: 500\n", "trip.yaml:2: frames: must be at most 128, got 500"),
        ("prompt: a\nframes: 16.5\n", "trip.yaml:2: frames: expected a whole number, got 16.5"),
        ("prompt: a\ncfg: abc\n", "trip.yaml:2: cfg: expected a number, got 'abc'"),
        ("prompt: a\nsteps: 0\n", "trip.yaml:2: steps: must be at least 1, got 0"),
        (
            "prompt: a\nipAdapterWeight: 3\n",
            "trip.yaml:2: ipAdapterWeight: must be at most 2, got 3",
        ),
        (
            "prompt: a\nseed: -1\n",
            "trip.yaml:2: seed: expected a whole number from 0 to 18446744073709551615, "
            'or "random", got -1',
        ),
        (
            "prompt: a\nseed: 18446744073709551616\n",
            "trip.yaml:2: seed: expected a whole number from 0 to 18446744073709551615, "
            'or "random", got 18446744073709551616',
        ),
        (
            "prompt: a\nresolution: big\n",
            (
                "trip.yaml:2: resolution: expected WIDTHxHEIGHT such as 512x512 (each "
                "64..2048, a multiple of 8), got 'big'"
            ),
        ),
        (
            "prompt: a\nresolution: 500x512\n",
            (
                "trip.yaml:2: resolution: width and height must each be a multiple of "
                "8 from 64 to 2048, got 500x512"
            ),
        ),
        (
            "prompt: a\nresolution: 4096x512\n",
            (
                "trip.yaml:2: resolution: width and height must each be a multiple of "
                "8 from 64 to 2048, got 4096x512"
            ),
        ),
        (
            'prompt: "   "\n',
            "trip.yaml:1: prompt: the prompt is blank; describe what the clip shows",
        ),
        (
            'prompt: ""\n',
            "trip.yaml:1: prompt: expected the prompt as text (1 to 10,000 characters), got ''",
        ),
        (
            "prompt: 42\n",
            "trip.yaml:1: prompt: expected the prompt as text (1 to 10,000 characters), got 42",
        ),
        (
            "clips:\n  - prompt: a\n  - steps: 3\n",
            "trip.yaml:3: clips[1]: a clip needs a `prompt` (text-to-video, plus `image` for "
            "image-to-video) or a `video` to import",
        ),
        (
            "clips:\n  - prompt: a\n    frames: 2\n",
            "trip.yaml:3: clips[0].frames: must be at least 8, got 2",
        ),
        (
            "clips: []\n",
            (
                "trip.yaml:1: clips: expected a list of 1 to 500 clips, each starting "
                "with `- prompt:` or `- video:`, got a list"
            ),
        ),
        (
            "prompt: a\nclips:\n  - prompt: b\n",
            (
                "trip.yaml:1: prompt: a clip field cannot stand beside `clips` at the "
                "top level: move it into a clip, or into `defaults`"
            ),
        ),
        (
            "project: x\n",
            (
                "trip.yaml:1: (manifest): the manifest needs a `prompt`, a `video` to "
                "import, a list of `clips`, `cancel`, or only `priority` and `project`"
            ),
        ),
        (
            "cancel: trip\nprompt: a\n",
            (
                "trip.yaml:2: prompt: a cancel manifest holds only `cancel`; drop this "
                "key or the `cancel` line"
            ),
        ),
        (
            "prompt: a\nexport:\n  transition: {type: fdae}\n",
            (
                "trip.yaml:3: export.transition.type: expected one of none, fade, "
                "dissolve, wipe, got 'fdae' (did you mean 'fade'?)"
            ),
        ),
        (
            "prompt: a\nexport:\n  format: mov\n",
            "trip.yaml:3: export.format: expected one of mp4, mp4-h265, webm, gif, got 'mov'",
        ),
        (
            "prompt: a\nexport:\n  upscale: {scale: 3}\n",
            "trip.yaml:3: export.upscale.scale: expected one of 2, 4, got 3",
        ),
        (
            "prompt: a\nresolution: 2048x1024\nexport:\n  upscale: {scale: 4}\n",
            (
                "trip.yaml:4: export.upscale.scale: upscaling 2048x1024 by 4 gives "
                "8192x4096; no side may exceed 4096 px"
            ),
        ),
        (
            "prompt: a\nexport:\n  interpolate: {fps: 8}\n",
            (
                "trip.yaml:3: export.interpolate.fps: must be above the clips' frame "
                "rate (8 fps), got 8"
            ),
        ),
        (
            (
                "clips:\n  - prompt: a\n    frames: 8\n  - prompt: b\nexport:\n  "
                "transition: {type: fade, duration: 1}\n"
            ),
            (
                "trip.yaml:6: export.transition.duration: a 1 s transition is as long "
                "as the shortest clip (clip1, 1 s) or longer; make it shorter"
            ),
        ),
        (
            "prompt: a\nprompt: b\n",
            "trip.yaml:2: prompt: key 'prompt' appears twice (first on line 1); keep one",
        ),
        (
            "",
            (
                "trip.yaml:1: (manifest): the manifest is empty; the smallest manifest "
                "is one line: `prompt: …`"
            ),
        ),
        (
            "- prompt: a\n",
            (
                "trip.yaml:1: (manifest): expected a mapping of settings such as "
                "`prompt: a red fox running through snow`"
            ),
        ),
        (
            "prompt: [a\n",
            (
                "trip.yaml:2: (manifest): not valid YAML (while parsing a flow "
                "sequence: did not find expected ',' or ']')"
            ),
        ),
        (
            "prompt: a\nregenerate: yes please\n",
            "trip.yaml:2: regenerate: expected true or false, got 'yes please'",
        ),
        (
            "clips:\n  - video: v.mp4\n    prompt: a\n",
            (
                "trip.yaml:3: clips[0].prompt: an imported video (`video`) is not "
                "generated: this setting does not apply to it"
            ),
        ),
    ],
)
def test_rejection_names_path_line_and_words(
    inbox: Path, plain_settings: Settings, text: str, expected: str
) -> None:
    assert expected in errors(check(inbox, plain_settings, text))


def test_every_problem_is_reported_at_once(inbox: Path, plain_settings: Settings) -> None:
    text = "prompt: a\nframes: 3\nsteps: 0\ncfg: 31\n"
    assert errors(check(inbox, plain_settings, text)) == [
        "trip.yaml:2: frames: must be at least 8, got 3",
        "trip.yaml:3: steps: must be at least 1, got 0",
        "trip.yaml:4: cfg: must be at most 30, got 31",
    ]


def test_whole_file_problems_are_on_line_one(inbox: Path, plain_settings: Settings) -> None:
    too_big = b"prompt: " + b"a" * (1024 * 1024) + b"\n"
    assert errors(check(inbox, plain_settings, too_big))[0].startswith(
        "trip.yaml:1: (manifest): the file is 1.0 MiB; a manifest may be at most 1 MiB"
    )
    utf16 = "prompt: a\n".encode("utf-16")
    assert errors(check(inbox, plain_settings, utf16)) == [
        "trip.yaml:1: (manifest): the file is not UTF-8 text (byte 1); save it as UTF-8"
    ]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcd", "bcde", strict=True)
    )
    assert errors(check(inbox, plain_settings, bomb)) == [
        "trip.yaml:1: (manifest): the manifest expands to more than 10,000 YAML nodes "
        "(counting what aliases repeat); split it or use fewer aliases"
    ]


def test_utf8_with_bom_and_korean_and_emoji(inbox: Path, plain_settings: Settings) -> None:
    text = "\ufeffproject: 내 프로젝트 🎬\nprompt: 바다 위의 일몰 🌅\n"
    manifest = accepted(check(inbox, plain_settings, text))
    assert (manifest.display_name, manifest.project_name) == ("내 프로젝트 🎬", "내프로젝트")
    assert manifest.clips[0].spec.prompt == "바다 위의 일몰 🌅"


def test_referenced_files_must_lie_inside_the_inbox(
    inbox: Path, plain_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "secret.png").write_bytes(PNG)
    (inbox / "link.png").symlink_to(tmp_path / "secret.png")
    (inbox / "text.png").write_text("not an image")
    (inbox / "folder.png").mkdir()
    text = """\
clips:
  - {prompt: a, image: ../secret.png}
  - {prompt: b, image: /etc/passwd}
  - {prompt: c, image: link.png}
  - {prompt: d, image: text.png}
  - {prompt: e, image: missing.png}
  - {prompt: f, image: folder.png}
  - {prompt: g, image: 'C:\\Users\\me\\girl.png'}
"""
    result = check(inbox, plain_settings, text)
    assert errors(result) == [
        (
            "trip.yaml:2: clips[0].image: ../secret.png must not contain '..': "
            "files must lie inside the inbox folder"
        ),
        (
            "trip.yaml:3: clips[1].image: /etc/passwd must be a path relative to "
            "the manifest, not an absolute path"
        ),
        (
            "trip.yaml:4: clips[2].image: link.png is a symbolic link; vidgen reads only "
            "real files inside the inbox folder"
        ),
        (
            "trip.yaml:5: clips[3].image: text.png is not an image (expected PNG, "
            "JPEG, WebP, GIF, BMP or TIFF)"
        ),
        "trip.yaml:6: clips[4].image: missing.png: no such file in the inbox folder",
        "trip.yaml:7: clips[5].image: folder.png is a folder, not a file",
        (
            "trip.yaml:8: clips[6].image: C:\\Users\\me\\girl.png must be a path "
            "relative to the manifest, not an absolute path"
        ),
    ]
    assert not result.only_missing_files


def test_nan_and_infinities_are_refused_with_their_path_and_line(
    inbox: Path, plain_settings: Settings
) -> None:
    (inbox / "girl.png").write_bytes(PNG)
    text = """\
defaults:
  cfg: .nan
clips:
  - {prompt: a, image: girl.png, ipAdapterWeight: .NaN}
  - {prompt: b, steps: .inf}
export:
  transition: {type: fade, duration: -.inf}
  quality: 1.0e+400
"""
    assert errors(check(inbox, plain_settings, text)) == [
        "trip.yaml:2: defaults.cfg: .nan is not a number vidgen can use; write a finite one",
        (
            "trip.yaml:4: clips[0].ipAdapterWeight: .NaN is not a number vidgen can use; "
            "write a finite one"
        ),
        "trip.yaml:5: clips[1].steps: .inf is not a number vidgen can use; write a finite one",
        (
            "trip.yaml:7: export.transition.duration: -.inf is not a number vidgen can use; "
            "write a finite one"
        ),
        (
            "trip.yaml:8: export.quality: 1.0e+400 is not a number vidgen can use; "
            "write a finite one"
        ),
    ]


def test_a_seed_with_a_decimal_point_is_an_error_not_random(
    inbox: Path, plain_settings: Settings
) -> None:
    assert errors(check(inbox, plain_settings, "prompt: a\nseed: 42.0\n")) == [
        "trip.yaml:2: seed: must be a whole number without a decimal point (42), or random"
    ]
    manifest = accepted(check(inbox, plain_settings, "prompt: a\nseed: 42\n"))
    assert manifest.clips[0].seed == 42


def test_only_missing_files_is_worth_waiting_for(inbox: Path, plain_settings: Settings) -> None:
    result = check(inbox, plain_settings, "prompt: a\nimage: refs/later.png\n")
    assert result.only_missing_files
    assert [p.path for p in result.missing] == ["image"]


def test_windows_separators_are_fine(inbox: Path, plain_settings: Settings) -> None:
    (inbox / "refs").mkdir()
    (inbox / "refs" / "girl.png").write_bytes(PNG)
    text = (
        "clips:\n  - {prompt: a, image: 'refs\\girl.png'}\n  - {prompt: b, image: refs/girl.png}\n"
    )
    manifest = accepted(check(inbox, plain_settings, text))
    assert [c.source for c in manifest.clips] == [inbox / "refs" / "girl.png"] * 2


def test_symbolic_links_are_refused_even_inside_the_inbox(
    inbox: Path, plain_settings: Settings
) -> None:
    # A link that points inside today can point elsewhere a moment later: none is followed.
    (inbox / "refs").mkdir()
    (inbox / "refs" / "girl.png").write_bytes(PNG)
    (inbox / "alias.png").symlink_to(inbox / "refs" / "girl.png")
    (inbox / "linked").symlink_to(inbox / "refs")
    text = "clips:\n  - {prompt: a, image: alias.png}\n  - {prompt: b, image: linked/girl.png}\n"
    assert errors(check(inbox, plain_settings, text)) == [
        (
            "trip.yaml:2: clips[0].image: alias.png is a symbolic link; vidgen reads only "
            "real files inside the inbox folder"
        ),
        (
            "trip.yaml:3: clips[1].image: linked/girl.png is reached through a symbolic link "
            "(linked); vidgen reads only real files inside the inbox folder"
        ),
    ]


def test_imported_video_is_probed_and_its_audio_noted(
    inbox: Path, plain_settings: Settings, make_clip: MakeClip, tmp_path: Path
) -> None:
    silent = make_clip(width=320, height=240, fps=24, duration_sec=1.0)
    os.link(silent, inbox / "intro.mp4")
    (inbox / "fake.mp4").write_text("not a video")
    text = (
        "clips:\n  - video: intro.mp4\n  - prompt: a\nexport:\n  transition: "
        "{type: fade, duration: 0.5}\n"
    )
    manifest = accepted(check(inbox, plain_settings, text))
    imported = manifest.clips[0]
    assert imported.spec.mode is GenerationMode.IMPORTED
    assert (imported.spec.width, imported.spec.height, imported.spec.frames) == (320, 240, 24)
    assert imported.duration_sec == pytest.approx(1.0, abs=0.05)
    too_long = text.replace("duration: 0.5", "duration: 1.5")
    assert (
        "trip.yaml:5: export.transition.duration: a 1.5 s transition is as long as the "
        "shortest clip (clip1, 1 s) or longer; make it shorter"
    ) in errors(check(inbox, plain_settings, too_long))
    fake = errors(check(inbox, plain_settings, "video: fake.mp4\n"))
    assert fake[0].startswith("trip.yaml:1: video: fake.mp4 is not a video ffmpeg can read")


def test_audio_of_imported_video_is_dropped_with_a_note(
    inbox: Path, plain_settings: Settings, tmp_path: Path
) -> None:
    with_audio = inbox / "talk.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=8:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-shortest",
            "-pix_fmt",
            "yuv420p",
            str(with_audio),
        ],
        check=True,
    )
    manifest = accepted(check(inbox, plain_settings, "video: talk.mp4\n"))
    assert manifest.notes == ("clip1: the audio of talk.mp4 is dropped (outputs are silent)",)


CATALOGUE = InstalledModels(
    {
        ModelKind.CHECKPOINT: (
            "realisticVisionV51_v51VAE.safetensors",
            "dreamshaper_8.safetensors",
        ),
        ModelKind.VAE: ("vae-ft-mse-840000-ema-pruned.safetensors",),
        ModelKind.MOTION_MODULE: ("mm_sd_v15_v2.ckpt",),
        ModelKind.IP_ADAPTER: ("ip-adapter-plus_sd15.safetensors",),
        ModelKind.CLIP_VISION: ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",),
        ModelKind.UPSCALE: ("RealESRGAN_x4plus.pth",),
        ModelKind.RIFE: ("rife47.pth", "rife49.pth"),
    }
)


def test_models_are_checked_against_the_catalogue(inbox: Path, plain_settings: Settings) -> None:
    text = (
        "prompt: a\ncheckpoint: dreamshaper_8\nexport:\n  interpolate: {fps: "
        "24, model: rife49}\n  upscale: {scale: 2}\n"
    )
    manifest = accepted(check(inbox, plain_settings, text, catalogue=CATALOGUE))
    assert manifest.clips[0].spec.checkpoint == "dreamshaper_8.safetensors"
    assert manifest.export.interpolate is not None
    assert manifest.export.upscale is not None
    assert (manifest.export.interpolate.engine, manifest.export.interpolate.model) == (
        Engine.COMFYUI,
        "rife49.pth",
    )
    assert manifest.export.upscale.engine is Engine.COMFYUI
    wrong = "prompt: a\ncheckpoint: sdxl_base\n"
    assert errors(check(inbox, plain_settings, wrong, catalogue=CATALOGUE)) == [
        "trip.yaml:2: checkpoint: checkpoint 'sdxl_base' is not installed in ComfyUI; "
        "installed: dreamshaper_8.safetensors, realisticVisionV51_v51VAE.safetensors"
    ]


def test_engine_auto_falls_back_to_ffmpeg_when_comfyui_lacks_the_model(
    inbox: Path, plain_settings: Settings
) -> None:
    text = "prompt: a\nexport:\n  upscale: {scale: 2, model: RealESRGAN_x4plus_anime_6B}\n"
    manifest = accepted(check(inbox, plain_settings, text, catalogue=CATALOGUE))
    assert manifest.export.upscale is not None
    assert manifest.export.upscale.engine is Engine.FFMPEG
    assert any("engine auto → ffmpeg" in note for note in manifest.notes)
    unreachable = accepted(check(inbox, plain_settings, "prompt: a\nexport:\n  upscale: {}\n"))
    assert unreachable.export.upscale is not None
    assert unreachable.export.upscale.engine is Engine.FFMPEG
    assert unreachable.export.upscale.model == "RealESRGAN_x4plus.pth"


def test_cancel_manifest(inbox: Path, plain_settings: Settings) -> None:
    result = check(inbox, plain_settings, "# stop it\ncancel: summerTrip\n")
    assert result.manifest == CancelRequest("trip.yaml", "summerTrip", 2)


def test_docs_are_generated_from_the_schema() -> None:
    committed = Path(__file__).resolve().parents[1] / "docs" / "manifest.md"
    assert committed.read_text(encoding="utf-8") == render()


# Property-based: any text, any generated or mutated manifest is accepted or rejected with
# problems in the one format; validation never raises.

_FIELDS = [
    "prompt",
    "negativePrompt",
    "image",
    "video",
    "seed",
    "frames",
    "steps",
    "cfg",
    "ipAdapterWeight",
    "checkpoint",
    "name",
    "regenerate",
    "project",
    "resolution",
    "defaults",
    "clips",
    "export",
    "cancel",
    "promt",
    "transition",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["random", "512x512", "fade", "../x.png", "/etc/passwd", "a.png"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from([*_FIELDS, "type", "duration", "scale", "fps"]), inner, max_size=5
        ),
    ),
    max_leaves=20,
)
_manifests = st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=8)


@hypothesis_settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=_manifests)
def test_generated_manifests_never_crash_validation(
    inbox: Path, plain_settings: Settings, document: dict[str, object]
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    result = check(inbox, plain_settings, text)
    assert (result.manifest is None) == bool(result.problems)
    for line in result.format().splitlines() if result.problems else []:
        assert line.startswith("trip.yaml:")


@hypothesis_settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.binary(max_size=200), st.text(alphabet=string.printable + "&*!|>-[]{}:", max_size=200)
    )
)
def test_arbitrary_bytes_never_crash_validation(
    inbox: Path, plain_settings: Settings, raw: bytes | str
) -> None:
    result = check(inbox, plain_settings, raw)
    assert (result.manifest is None) == bool(result.problems)


@pytest.mark.parametrize(
    ("export", "notes"),
    [
        (
            "{format: gif, interpolate: {fps: 24, engine: ffmpeg}}",
            [
                "gif at 24 fps: its frames last 4 or 5/100 s in turn, 24 fps on average "
                "(GIF timing is in 1/100 s)"
            ],
        ),
        (
            "{format: gif, interpolate: {fps: 30, engine: ffmpeg}, upscale: {engine: ffmpeg}}",
            [
                "gif at 30 fps plays at 25 fps, frames dropped (GIF timing is in 1/100 s, and "
                "some players slow down delays under 4/100 s)",
                "upscale has no effect on a gif: it is at most 512 px wide, and the clips are "
                "512 px wide already",
            ],
        ),
        (
            "{format: gif, transition: {duration: 1, direction: up}}",
            [
                "transition duration and direction have no effect without a type",
                "gif is at most 512 px wide: the 768 px wide frames are scaled down",
            ],
        ),
        (
            "{transition: {type: fade, direction: up}}",
            [
                "transition direction has no effect on fade (wipe only)",
                "a transition has no effect on a single clip",
            ],
        ),
        ("{format: gif, quality: high}", []),  # the clips' 8 fps, as generated
    ],
)
def test_validate_says_what_an_export_setting_changes_or_ignores(
    inbox: Path, plain_settings: Settings, export: str, notes: list[str]
) -> None:
    size = "768x512" if "direction: up}}" in export and "gif" in export else "512x512"
    text = f"prompt: a fox\nresolution: {size}\nexport: {export}\n"
    manifest = accepted(check(inbox, plain_settings, text))
    assert [n for n in manifest.notes if "engine" not in n] == notes
