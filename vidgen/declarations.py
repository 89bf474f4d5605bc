"""Each setting declared once, on its dataclass field, and everything derived from that.

A field's annotation gives the type, its snake_case name the camelCase key in config.yaml, and
``setting()`` the default, the one-line comment, the JSON-schema keywords and the environment
variable. Walking the fields gives the schema, the text of config.yaml, the environment overrides
and the typed values built from a validated file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from vidgen.errors import ConfigError

_T = TypeVar("_T")
_KEY = "vidgen.setting"
_MAPPINGS = (dict, Mapping)
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}


@dataclass(frozen=True, slots=True)
class Declaration:
    """What ``setting()`` records beside the default."""

    comment: str = ""
    env: str | None = None
    expected: str | None = None  # what a value is, for an environment variable's error
    keywords: Mapping[str, Any] = field(default_factory=dict)  # JSON-schema keywords, camelCase
    item_keywords: Mapping[str, Any] = field(default_factory=dict)  # the same for each item


def setting(
    default: _T,
    comment: str = "",
    *,
    env: str | None = None,
    expected: str | None = None,
    items: Mapping[str, Any] | None = None,
    **keywords: Any,
) -> _T:
    """A setting's one declaration: default, comment, schema keywords in snake_case
    (``exclusive_minimum=0``; ``items`` for each item of a list) and its environment variable."""
    declaration = Declaration(comment, env, expected, _camel_keys(keywords), _camel_keys(items))
    return field(default=default, metadata={_KEY: declaration})


def required(comment: str = "", **keywords: Any) -> Any:
    """A setting without a default (a key each list item must have)."""
    return field(metadata={_KEY: Declaration(comment, keywords=_camel_keys(keywords))})


def section(factory: Callable[[], _T], comment: str = "") -> _T:
    """A group of settings: a dataclass of its own, a mapping in config.yaml."""
    return field(default_factory=factory, metadata={_KEY: Declaration(comment)})


@dataclass(frozen=True, slots=True)
class _Entry:
    """One declared field of a settings dataclass, as the walks see it."""

    name: str
    key: str
    hint: Any
    declaration: Declaration
    required: bool


def _entries(cls: type) -> tuple[_Entry, ...]:
    """The declared settings of a dataclass in order; fields derived from them are left out."""
    hints = typing.get_type_hints(cls)
    return tuple(
        _Entry(
            name=f.name,
            key=_camel(f.name),
            hint=hints[f.name],
            declaration=f.metadata[_KEY],
            required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if _KEY in f.metadata
    )


def schema_of(cls: type) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a settings dataclass as config.yaml spells it."""
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {e.key: _schema(e.hint, e.declaration) for e in _entries(cls)},
    }
    if names := [e.key for e in _entries(cls) if e.required]:
        schema["required"] = names
    return schema


def _schema(hint: Any, declaration: Declaration) -> dict[str, Any]:
    inner = _without_none(hint)
    origin = typing.get_origin(inner)
    if (cls := _dataclass(inner)) is not None:
        schema = schema_of(cls)
    elif origin is Literal:
        schema = {"enum": list(typing.get_args(inner))}
    elif origin in _MAPPINGS:
        # free-form here; the part that reads it checks it against its own schema
        schema = {"type": "object"}
    elif origin is tuple:
        item = typing.get_args(inner)[0]
        schema = {
            "type": "array",
            "items": _schema(item, Declaration(keywords=declaration.item_keywords)),
        }
    else:
        # an empty path would name the config file's own folder, never what was meant
        schema = {"type": _JSON_TYPES[inner], **({"minLength": 1} if inner is Path else {})}
    schema.update(declaration.keywords)
    if inner is not hint:
        schema["type"] = [schema["type"], "null"]
    return schema


def plain(value: Any) -> Any:
    """A typed value as config.yaml spells it (camelCase mappings, lists, path strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {e.key: plain(getattr(value, e.name)) for e in _entries(type(value))}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def build(cls: type[_T], raw: Mapping[str, Any], resolve: Callable[[str], Path]) -> _T:
    """The dataclass from a validated mapping; keys left out keep their defaults."""
    values = {e.name: _typed(raw[e.key], e.hint, resolve) for e in _entries(cls) if e.key in raw}
    return cls(**values)


def _typed(value: Any, hint: Any, resolve: Callable[[str], Path]) -> Any:
    inner = _without_none(hint)
    if value is None:
        return None
    if (cls := _dataclass(inner)) is not None:
        return build(cls, value, resolve)
    if typing.get_origin(inner) is tuple:
        item = typing.get_args(inner)[0]
        return tuple(_typed(v, item, resolve) for v in value)
    if typing.get_origin(inner) in _MAPPINGS:
        return types.MappingProxyType(dict(value))  # read-only, as the rest of Settings
    if inner is Path:
        return resolve(value)
    if inner is float:
        return float(value)  # YAML reads "60" as an int
    if inner is int:
        return int(value)  # JSON schema counts 8000.0 as an integer
    return value


# --- config.yaml's text ---------------------------------------------------------------------------

# Comments line up in this column; a longer line keeps two spaces before its comment.
_COMMENT_COLUMN = 32


def render(cls: type, header: list[str]) -> str:
    """config.yaml: ``header``, then every setting with its default and its comment."""
    defaults = plain(cls())
    lines = list(header)
    after_scalar = False
    for entry in _entries(cls):
        is_block = _is_block(entry.hint)
        if is_block or not after_scalar:  # top-level scalars stand together, blocks apart
            lines.append("")
        lines.extend(_lines(entry, defaults[entry.key], ""))
        after_scalar = not is_block
    return "\n".join(lines) + "\n"


def _lines(entry: _Entry, value: Any, indent: str) -> Iterator[str]:
    hint, comment = _without_none(entry.hint), entry.declaration.comment
    if not _is_block(hint) or value == []:  # an empty list of mappings reads back as []
        yield _commented(f"{indent}{entry.key}: {_scalar(value)}", comment)
        return
    yield _commented(f"{indent}{entry.key}:", comment)
    if (cls := _dataclass(hint)) is not None:
        for child in _entries(cls):
            yield from _lines(child, value[child.key], indent + "  ")
        return
    row_entries = _entries(typing.get_args(hint)[0])
    for row in value:
        for index, child in enumerate(row_entries):
            bullet = f"{indent}  - " if index == 0 else f"{indent}    "
            yield _commented(
                f"{bullet}{child.key}: {_scalar(row[child.key])}", child.declaration.comment
            )


def _is_block(hint: Any) -> bool:
    """A section, or a list of mappings: written over several lines."""
    inner = _without_none(hint)
    if typing.get_origin(inner) is tuple:
        return _dataclass(typing.get_args(inner)[0]) is not None
    return _dataclass(inner) is not None


def _commented(text: str, comment: str) -> str:
    if not comment:
        return text
    gap = _COMMENT_COLUMN - len(text) if len(text) < _COMMENT_COLUMN else 2
    return f"{text}{' ' * gap}# {comment}"


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        # PyYAML quotes every ':' in a flow list (http://…); the plain form reads back the same
        flow = "[" + ", ".join(_scalar(v) for v in value) + "]"
        return flow if yaml.safe_load(flow) == value else _dump(value)
    return _dump(value)


def _dump(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


# --- the environment ------------------------------------------------------------------------------


def environment_names(cls: type) -> list[str]:
    """Every environment variable with how it spells a list, as config.yaml's header lists them."""
    names = []
    for _path, entry, variable in _environment_entries(cls):
        note = _list_note(entry.hint)
        names.append(f"{variable} ({note})" if note else variable)
    return names


def apply_environment(cls: type, raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``raw`` with each declared environment variable that is set (and not empty) in force.

    Raises:
        ConfigError: a variable that cannot be read as its setting's type, naming the variable.
    """
    for path, entry, variable in _environment_entries(cls):
        if text := env.get(variable):
            raw = _with(raw, path, _from_environment(entry, variable, text, _at(raw, path)))
    return raw


def _environment_entries(
    cls: type, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], _Entry, str]]:
    for entry in _entries(cls):
        if entry.declaration.env:
            yield (*path, entry.key), entry, entry.declaration.env
        if (section_type := _dataclass(entry.hint)) is not None:
            yield from _environment_entries(section_type, (*path, entry.key))


def _list_note(hint: Any) -> str | None:
    inner = _without_none(hint)
    if typing.get_origin(inner) is not tuple:
        return None
    # a list of mappings is a list of folders (paths may hold commas)
    return "os.pathsep-separated" if _is_block(inner) else "comma-separated"


def _from_environment(entry: _Entry, variable: str, text: str, current: Any) -> Any:
    inner = _without_none(entry.hint)
    if typing.get_origin(inner) is tuple:
        if (row_type := _dataclass(typing.get_args(inner)[0])) is not None:
            return _rows(row_type, [p for p in text.split(os.pathsep) if p], current)
        return [part.strip() for part in text.split(",") if part.strip()]
    if inner is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{variable}: expected {_expected(entry)}, got {text!r}") from None
    return text


def _rows(row_type: type, folders: list[str], current: Any) -> list[dict[str, Any]]:
    """One row per folder: the folders are replaced, the first row's other settings carry over."""
    row_entries = _entries(row_type)
    (key,) = (e.key for e in row_entries if e.required)
    first = current[0] if isinstance(current, list) and current else {}
    if not isinstance(first, Mapping):
        first = {}
    folder_keys = {e.key for e in row_entries if _without_none(e.hint) is Path}
    template = {k: v for k, v in first.items() if k not in folder_keys}
    return [{**template, key: folder} for folder in folders]


def _expected(entry: _Entry) -> str:
    keywords = entry.declaration.keywords
    what = entry.declaration.expected or "an integer"
    if "minimum" in keywords and "maximum" in keywords:
        return f"{what} {keywords['minimum']}..{keywords['maximum']}"
    return what


def _at(raw: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = raw
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _with(raw: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    head, *rest = path
    if not rest:
        return {**raw, head: value}
    current = raw.get(head)
    return {**raw, head: _with(current if isinstance(current, Mapping) else {}, tuple(rest), value)}


# --- small helpers --------------------------------------------------------------------------------


def _dataclass(hint: Any) -> type | None:
    """The settings dataclass ``hint`` names, if it names one."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _without_none(hint: Any) -> Any:
    """``X`` of ``X | None``; any other hint as it is."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _camel_keys(keywords: Mapping[str, Any] | None) -> dict[str, Any]:
    return {_camel(k): v for k, v in (keywords or {}).items()}
