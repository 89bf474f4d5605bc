"""A manifest's ``vars``: ``{name}`` in a prompt replaced by the var's text, ``{{`` and ``}}``
standing for literal braces, and every name that is not a var reported."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Only a brace pair around a name is a reference: other braces (prompt weights such as
# "(red:1.2)" use none, but "{a|b}" wildcards do) are left as written.
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its references replaced, and the names it uses that ``values`` lacks."""
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name in values:
            return values[name]
        unknown.append(name)
        return token

    return _TOKEN.sub(replace, text), unknown


def unknown_message(name: str, values: Mapping[str, str]) -> str:
    known = ", ".join(sorted(values)) or "none"
    return (
        f"{{{name}}} is not defined under `vars` (defined: {known}); "
        "write {{ and }} for literal braces"
    )
