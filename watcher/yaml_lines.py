"""A manifest's YAML read safely: size, encoding and node limits, plus the line of every key and
value, so each problem can name the line a person must edit.

The composed node tree gives the lines; the same tree is constructed with the safe constructor,
so there is one parse. Limits are checked on the event stream first (no recursion, no
construction), which is what stops alias bombs: a few lines that expand to millions of nodes.
YAML's ``.nan`` and ``.inf`` (and a number too big for a float) are refused here, with their
path and line: no setting takes them, and a NaN compares false with every schema bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from vidgen.errors import ManifestError, Problem

MAX_BYTES = 1024 * 1024
MAX_NODES = 10_000

PathKey = tuple[str | int, ...]

# libyaml when present (much faster); the pure-Python loader otherwise. Both are safe loaders.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOAT_TAG = "tag:yaml.org,2002:float"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """The constructed document and the lines (1-based) of its keys and values."""

    data: Any
    key_lines: dict[PathKey, int] = field(default_factory=dict)
    value_lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey, *, key: bool = False) -> int:
        """The line of the value (or key) at ``path``, else of its nearest ancestor, else 1."""
        if key and path in self.key_lines:
            return self.key_lines[path]
        for end in range(len(path), 0, -1):
            found = self.value_lines.get(path[:end]) or self.key_lines.get(path[:end])
            if found:
                return found
        return 1


def format_path(path: PathKey) -> str:
    """``('clips', 1, 'frames')`` → ``clips[1].frames``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_yaml(raw: bytes) -> YamlDocument:
    """Decode, check the limits, parse and construct one YAML document.

    Raises:
        ManifestError: too large, not UTF-8, not YAML, or too many nodes.
    """
    if len(raw) > MAX_BYTES:
        size = f"{len(raw) / MAX_BYTES:.1f} MiB"
        raise _whole_file(f"the file is {size}; a manifest may be at most 1 MiB")
    try:
        text = raw.decode("utf-8-sig")  # a BOM (Windows Notepad) is still UTF-8
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte {exc.start + 1}); save it as UTF-8"
        raise _whole_file(message) from None
    try:
        _check_limits(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            duplicates = _duplicate_keys(node) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ManifestError([_yaml_problem(exc)]) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:
        # The safe constructor raises these for values YAML accepts but Python cannot hold,
        # e.g. an integer of 5,000 digits or the date 2024-13-45.
        raise _whole_file(f"a value cannot be read ({exc})") from None
    if duplicates:
        raise ManifestError(duplicates)
    document = YamlDocument(data=data)
    if node is not None and (not_finite := _record_lines(node, document)):
        raise ManifestError(not_finite)
    return document


def _whole_file(message: str) -> ManifestError:
    return ManifestError([Problem("", 1, message)])


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{context}: {problem}" if context else problem
    return Problem("", line, f"not valid YAML ({detail})")


def _check_limits(text: str) -> None:
    """Count nodes as construction would see them, aliases expanded, without building any.

    Raises:
        ManifestError: more than MAX_NODES nodes.
    """
    # A collection's size (itself, its items and what its aliases repeat) is known when it
    # closes; an alias to it adds that size again.
    anchor_sizes: dict[str, int] = {}
    starts: list[tuple[str | None, int]] = []
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            total += anchor_sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
        elif isinstance(event, yaml.CollectionStartEvent):
            starts.append((event.anchor, total))
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, begin = starts.pop()
            if anchor:
                anchor_sizes[anchor] = total - begin
        if total > MAX_NODES:
            raise _whole_file(
                f"the manifest expands to more than {MAX_NODES:,} YAML nodes "
                "(counting what aliases repeat); split it or use fewer aliases"
            )


def _key_of(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    return f"<{node.tag}>"


def _duplicate_keys(root: yaml.Node) -> list[Problem]:
    """Keys given twice in one mapping: YAML keeps the last silently, which hides typos."""
    problems: list[Problem] = []
    for path, node in _walk(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _key_of(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = format_path((*path, str(key)))
                message = f"key '{key}' appears twice (first on line {seen[key]}); keep one"
                problems.append(Problem(where, line, message))
            else:
                seen[key] = line
    return problems


def _walk(root: yaml.Node) -> Iterator[tuple[PathKey, yaml.Node]]:
    """Every node with its path, depth first, each node object once (aliases share objects)."""
    stack: list[tuple[PathKey, yaml.Node]] = [((), root)]
    visited: set[int] = set()
    while stack:
        path, node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        yield path, node
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = _key_of(key_node)
                stack.append(((*path, key if isinstance(key, str) else str(key)), value_node))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((*path, index), item) for index, item in enumerate(node.value))


def _record_lines(root: yaml.Node, document: YamlDocument) -> list[Problem]:
    """Note the line of every key and value; returns the values that are no finite number."""
    document.value_lines[()] = root.start_mark.line + 1
    not_finite: list[Problem] = []
    for path, node in _walk(root):
        children: list[tuple[PathKey, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = _key_of(key_node)
                child = (*path, key if isinstance(key, str) else str(key))
                document.key_lines.setdefault(child, key_node.start_mark.line + 1)
                children.append((child, value_node))
        elif isinstance(node, yaml.SequenceNode):
            children = [((*path, index), item) for index, item in enumerate(node.value)]
        for child, value_node in children:
            document.value_lines.setdefault(child, value_node.start_mark.line + 1)
            if isinstance(value_node, yaml.ScalarNode) and not _finite(value_node):
                message = f"{value_node.value} is not a number vidgen can use; write a finite one"
                not_finite.append(
                    Problem(format_path(child), value_node.start_mark.line + 1, message)
                )
    return not_finite


def _finite(node: yaml.ScalarNode) -> bool:
    if node.tag != _FLOAT_TAG:
        return True
    value = yaml.constructor.SafeConstructor().construct_yaml_float(node)
    return math.isfinite(value)
