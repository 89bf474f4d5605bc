"""A clip with ``variations: N`` or ``sweep:`` becomes several clips, one per seed or per
combination of the swept values, and ``pick`` says which of them the export plays.

Seeds follow the usual rule: ``variations`` with no seed draws one per variation at intake (kept
on every re-drop: each is told apart by its number), with ``seed: S`` uses S, S+1, …; a sweep
without ``seed`` among its settings shares one seed across its combinations, so the tiles of
the contact sheet differ only in what was swept.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from vidgen.specs import MAX_SEED, MAX_VARIATIONS, Pick, Variation, variation_label
from watcher.resolve import Context, ManifestClip
from watcher.yaml_lines import PathKey, format_path


def expand_clip(
    ctx: Context, path: PathKey, clip: Mapping[str, Any], resolved: ManifestClip, first: int
) -> list[ManifestClip]:
    """The clips ``resolved`` stands for: itself, or its variations in the contact sheet's
    order; ``first`` is where the first of them goes among the manifest's clips."""
    if "variations" not in clip and "sweep" not in clip:
        if "pick" in clip:
            message = "there is nothing to pick from: `pick` goes with `variations` or `sweep`"
            ctx.problem((*path, "pick"), message, key=True)
        return [resolved]
    if "variations" in clip and "sweep" in clip:
        message = "use either `variations` (other seeds) or `sweep` (other values), not both"
        ctx.problem((*path, "sweep"), message, key=True)
        return [resolved]
    if "variations" in clip:
        keys, combos = _seed_variations(ctx, path, int(clip["variations"]), resolved.seed)
    else:
        keys, combos = _sweep(ctx, path, clip)
    numbered = "variations" in clip and resolved.seed is None
    pick = _pick(ctx, path, clip, keys, combos, numbered=numbered)
    shares_seed = "seed" not in keys and resolved.seed is None
    members = []
    for number, combo in enumerate(combos, start=1):
        seed = combo.get("seed", resolved.seed)
        spec = replace(
            resolved.spec,
            clip_name=f"{resolved.spec.clip_name} v{number}",
            seed=seed or 0,
            cfg=float(combo.get("cfg", resolved.spec.cfg)),
            steps=int(combo.get("steps", resolved.spec.steps)),
        )
        variation = Variation(
            first=first,
            number=number,
            count=len(combos),
            keys=keys,
            shares_seed=shares_seed and number > 1,
            numbered=numbered,
            pick=pick,
        )
        members.append(replace(resolved, spec=spec, seed=seed, variation=variation))
    return members


def _seed_variations(
    ctx: Context, path: PathKey, count: int, seed: int | None
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    if seed is None:
        return ("seed",), [{} for _ in range(count)]
    if seed + count - 1 > MAX_SEED:
        message = f"with {count} variations the seeds run from {seed} past {MAX_SEED}"
        ctx.problem((*path, "variations"), message)
    return ("seed",), [{"seed": min(seed + k, MAX_SEED)} for k in range(count)]


def _sweep(
    ctx: Context, path: PathKey, clip: Mapping[str, Any]
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    sweep: Mapping[str, Sequence[Any]] = clip["sweep"]
    keys = tuple(sweep)
    for key in keys:
        if key in clip:
            message = f"`{key}` is swept: list its values under `sweep` only"
            ctx.problem((*path, key), message, key=True)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*sweep.values())]
    where = (*path, "sweep")
    if len(combos) > MAX_VARIATIONS:
        counts = " x ".join(str(len(v)) for v in sweep.values())
        message = f"the sweep makes {counts} = {len(combos)} combinations; at most {MAX_VARIATIONS}"
        ctx.problem(where, message)
    elif len(combos) < 2:
        ctx.problem(where, "a sweep needs at least two values to compare")
    return keys, combos


def _pick(
    ctx: Context,
    path: PathKey,
    clip: Mapping[str, Any],
    keys: tuple[str, ...],
    combos: list[dict[str, Any]],
    *,
    numbered: bool,
) -> Pick | None:
    if "pick" not in clip:
        return None
    where = (*path, "pick")
    line = ctx.document.line_of(where)
    wanted = clip["pick"]
    if isinstance(wanted, int):
        if wanted > len(combos):
            ctx.problem(
                where, f"there are only {len(combos)} variations, numbered 1 to {len(combos)}"
            )
        return Pick(min(wanted, len(combos)), path=format_path(where), line=line)
    for key in wanted:
        if key not in keys:
            told = " and ".join(f"`{k}`" for k in keys)
            ctx.problem((*where, key), f"the variations differ only in {told}", key=True)
            return None
    if numbered:  # the seeds are drawn at intake: the one named is found then
        seed_at = (*where, "seed")
        line = ctx.document.line_of(seed_at)
        return Pick(None, int(wanted["seed"]), path=format_path(seed_at), line=line)
    fits = [n for n, combo in enumerate(combos, start=1) if _fits(combo, wanted)]
    if len(fits) == 1:
        return Pick(fits[0], path=format_path(where), line=line)
    if not fits:
        listed = ", ".join(_label(keys, combo) for combo in combos)
        ctx.problem(where, f"no variation has {_label(tuple(wanted), wanted)}; they are: {listed}")
    else:
        ctx.problem(where, f"{len(fits)} variations have these values: name every swept setting")
    return None


def _fits(combo: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(combo[key] == value for key, value in wanted.items())  # 7 == 7.0 for cfg


def _label(keys: tuple[str, ...], values: Mapping[str, Any]) -> str:
    return variation_label(
        keys, int(values.get("seed", 0)), float(values.get("cfg", 0)), int(values.get("steps", 0))
    )
