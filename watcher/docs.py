"""docs/manifest.md, generated from manifest.schema.json so the reference never drifts from what
intake accepts. Run ``python -m watcher.docs`` from the repository root after changing the schema.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from watcher.schema_messages import manifest_schema

_EXAMPLE = """\
project: Summer Trip              # display name; projectName = summerTrip
resolution: 512x512
defaults:
  negativePrompt: blurry, low quality, watermark
  steps: 20
  frames: 16
clips:
  - prompt: waves rolling onto the shore at golden hour
    seed: 42
  - prompt: a girl smiling, wind in her hair
    image: refs/girl.png
    ipAdapterWeight: 0.8
  - video: footage/intro.mp4
export:
  transition: { type: fade, duration: 0.5 }
  upscale: { scale: 2, model: RealESRGAN_x4plus }
  interpolate: { fps: 24, model: rife47 }
  format: mp4
  quality: high
"""

_AFTER = """\
## How a manifest is checked

- Limits: 1 MiB per file, UTF-8 text, at most 10,000 YAML nodes counting what aliases repeat.
- Every problem is reported, each as `FILE:LINE: PATH: MESSAGE` (PATH like `clips[1].frames`,
  LINE the line of the offending key or value, 1 for the whole file), by `vidgen validate` and in
  `inbox/rejected/NAME.error.txt`.
- Beyond the types above: `resolution` sides must be multiples of 8; a prompt cannot be blank; a
  transition must be shorter than the shortest clip (a generated clip lasts frames / 8 s, an
  imported one as long as ffprobe says); files named must exist inside the inbox folder, images
  must be images and videos videos; no side may exceed 4096 px after upscaling; model names
  (motion LoRAs too) must be installed in ComfyUI when one is reachable (the extension may be
  left out); a clip gives `prompt` or `prompts`, its own or from `defaults`; prompt-travel
  frames are whole numbers from 0, rising, below the clip's `frames`; every `{name}` in a prompt
  is defined under `vars` (`{{` and `}}` are literal braces, and a recipe writes them so).
- An inbox may carry a preset in config.yaml (`defaults` and `export` under `inboxes:`): what a
  manifest dropped there leaves out is taken from it, key by key (a manifest's `export.interpolate`
  replaces the preset's whole). `vidgen validate` names the preset in a note; it takes the preset
  of the inbox the file lies in, or of `--inbox NAME`.
- Notes (not problems) say what a setting changes or ignores: a GIF above 25 fps plays at 25, an
  upscale on a GIF of clips 512 px wide or more, a transition's direction on anything but wipe,
  a `quality` when the clips are copied into the output as they are.
- A manifest whose files are not there yet waits for them up to `intake.missingFilesGraceSeconds`.
- Dropping a manifest for an existing project updates it like a build system: unchanged clips keep
  their video (a clip with `seed` omitted or `random` keeps the seed drawn for it the first time),
  reordered clips are joined again without regenerating, changed or failed clips are generated
  again, clips left out are marked removed, and a manifest that changes nothing queues nothing.
"""


def render() -> str:
    """The whole page."""
    schema = manifest_schema()
    defs = schema["$defs"]
    parts = [
        "# The manifest\n",
        "Generated from `watcher/manifest.schema.json` by `python -m watcher.docs`; "
        "do not edit by hand.\n",
        schema["description"] + "\n",
        "The smallest manifest is one line:\n",
        "```yaml\nprompt: a red fox running through snow\n```\n",
        f"A full one:\n\n```yaml\n{_EXAMPLE}```\n",
        "## Top level\n",
        _table(schema, defs, skip=set(defs["clip"]["properties"])),
        "Clip fields may also stand at the top level as shorthand for a single clip.\n",
        "## Clip fields\n",
        defs["clip"]["description"] + "\n",
        _table(defs["clip"], defs),
        "## export\n",
        defs["export"]["description"] + "\n",
        _table(defs["export"], defs),
    ]
    for name in ("transition", "upscale", "interpolate"):
        section = defs["export"]["properties"][name]
        parts += [f"### export.{name}\n", section["description"] + "\n", _table(section, defs)]
    parts.append(_AFTER)
    return "\n".join(parts)


def _table(schema: dict[str, Any], defs: dict[str, Any], skip: set[str] | None = None) -> str:
    rows = ["| key | value | meaning |", "| --- | --- | --- |"]
    for key, prop in schema["properties"].items():
        if skip and key in skip:
            continue
        resolved = _resolve(prop, defs)
        meaning = (prop.get("description") or resolved.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{key}` | {_value(resolved, defs)} | {meaning} |")
    return "\n".join(rows) + "\n"


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        target = _resolve(defs[prop["$ref"].rsplit("/", 1)[-1]], defs)
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _value(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_value(_resolve(p, defs), defs) for p in prop["anyOf"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind: str = {
        "object": "mapping",
        "array": "list",
        "string": "text",
        "integer": "whole number",
    }.get(prop.get("type", ""), prop.get("type", ""))
    if "exclusiveMinimum" in prop:
        kind += f" above {prop['exclusiveMinimum']}"
        return kind + (f", at most {prop['maximum']}" if "maximum" in prop else "")
    if "minimum" in prop or "maximum" in prop:
        kind += f" {prop.get('minimum', '')}..{prop.get('maximum', '')}"
    return kind


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("docs/manifest.md")
    target.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
