"""JSON Schema errors in words a person understands, each with its YAML path and line.

The schema (``manifest.schema.json``) is the single source of truth; where a bare jsonschema
message would be cryptic (``anyOf``, ``pattern``, ``propertyNames``), the schema carries its own
``x-message`` saying what is expected, and this module adds what was found.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from vidgen.errors import Problem
from watcher.yaml_lines import PathKey, YamlDocument, format_path

_FOUND_MAX = 60
_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "a mapping (key: value lines)",
    "array": "a list (lines starting with -)",
}


@cache
def manifest_schema() -> dict[str, Any]:
    """The manifest schema, read once from the package."""
    text = resources.files("watcher").joinpath("manifest.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema())


def schema_problems(document: YamlDocument) -> list[Problem]:
    """Every schema error of the document, sorted by path, as problems (one per unknown key)."""
    errors = sorted(_validator().iter_errors(document.data), key=lambda e: _sort_key(e.path))
    unknown = {path for error in errors for path in _unknown_paths(error)}
    problems: list[Problem] = []
    for error in errors:
        if error.validator == "additionalProperties":
            problems.extend(_unknown_keys(error, document))
            continue
        path = _error_path(error)
        if error.validator != "additionalProperties" and _is_key_error(error) and path in unknown:
            continue  # already reported as an unknown key
        line = document.line_of(path, key=_is_key_error(error))
        problems.append(Problem(format_path(path), line, describe(error)))
    return _unique(problems)


def _sort_key(path: Any) -> list[tuple[int, str]]:
    return [(0, f"{p:09d}") if isinstance(p, int) else (1, str(p)) for p in path]


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _is_key_error(error: ValidationError) -> bool:
    return "propertyNames" in error.schema_path


def _error_path(error: ValidationError) -> PathKey:
    path: PathKey = tuple(error.absolute_path)
    if _is_key_error(error):
        path = (*path, str(error.instance))
    return path


def _unknown_paths(error: ValidationError) -> Iterator[PathKey]:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for key in error.instance:
            if key not in allowed:
                yield (*tuple(error.absolute_path), str(key))


def _unknown_keys(error: ValidationError, document: YamlDocument) -> Iterator[Problem]:
    allowed = sorted(error.schema.get("properties", {}) if isinstance(error.schema, dict) else {})
    for path in _unknown_paths(error):
        key = str(path[-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
        else:
            hint = f" (expected one of: {', '.join(allowed)})" if len(allowed) <= 8 else ""
        line = document.line_of(path, key=True)
        yield Problem(format_path(path), line, f"unknown key '{key}'{hint}")


def describe(error: ValidationError) -> str:
    """One schema error as a sentence: what was expected, and what was found."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-message")
    found = found_text(error.instance)
    validator = str(error.validator)
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return _bound(validator, error.validator_value, found)
    if validator == "required":
        return _missing(error, custom)
    if validator == "enum" and not _is_key_error(error):
        choices = ", ".join(str(c) for c in _listed(error.validator_value))
        return f"expected one of {choices}, got {found}{_did_you_mean(error)}"
    if custom:
        return custom if _is_key_error(error) else f"{custom}, got {found}"
    if validator == "type":
        expected = _TYPE_WORDS.get(str(error.validator_value), str(error.validator_value))
        return f"expected {expected}, got {found}"
    return error.message


def _bound(validator: str, limit: Any, found: str) -> str:
    words = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than",
    }
    return f"must be {words[validator]} {limit}, got {found}"


def _missing(error: ValidationError, custom: str | None) -> str:
    if custom:
        return custom
    required = [str(k) for k in _listed(error.validator_value)]
    instance = error.instance if isinstance(error.instance, dict) else {}
    missing = [k for k in required if k not in instance] or required
    return f"missing '{missing[0]}'"


def _did_you_mean(error: ValidationError) -> str:
    if not isinstance(error.instance, str):
        return ""
    choices = [str(c) for c in _listed(error.validator_value)]
    close = difflib.get_close_matches(error.instance, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def found_text(value: Any) -> str:
    """A short rendering of what the manifest holds, as a person would recognise it."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= _FOUND_MAX else value[:_FOUND_MAX] + "…"
        return repr(shown)
    text = str(value)
    return text if len(text) <= _FOUND_MAX else text[:_FOUND_MAX] + "…"
