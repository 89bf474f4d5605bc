"""Execution order and cache signatures of a validated prompt.

Node order is part of what a client sees (``executing`` messages), and it is not node-id order:
ComfyUI dissolves the graph from the output nodes and prefers, among ready nodes, an output node,
then a node feeding an output, then one two steps before an output (docs/comfyui.md#measured). This
module follows the same rules, so the double's order matches the captures.

A node's signature is its class, its inputs and its upstream nodes' signatures (plus a file hash for
loaders), like ComfyUI's classic cache key, so cache hits span prompts and ignore node ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

Prompt = dict[str, Any]
IsOutput = Callable[[str], bool]


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


class ExecutionOrder:
    """Hands out ready nodes one at a time in ComfyUI's order; cached upstream nodes are skipped."""

    def __init__(
        self, prompt: Prompt, is_output: IsOutput, is_cached: Callable[[str], bool]
    ) -> None:
        self.prompt = prompt
        self.is_output = is_output
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_output(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, str]] = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = True
            self.block_count[current] = 0
            self.blocking[current] = {}
            for value in self.prompt[current]["inputs"].values():
                if is_link(value) and not self.is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            if target not in self.blocking[source]:
                self.blocking[source][target] = True
                self.block_count[target] += 1

    def is_empty(self) -> bool:
        return not self.pending

    def next_node(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        for node_id in ready:
            if self.is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self.is_output(b) for b in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self.blocking[node_id]:
                if any(self.is_output(b) for b in self.blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking.pop(node_id):
            self.block_count[blocked] -= 1


def signatures(prompt: Prompt, file_hash: Callable[[str, dict[str, Any]], str]) -> dict[str, str]:
    """Cache key of every node: class + inputs + upstream keys (+ loader file hash)."""
    done: dict[str, str] = {}

    def sign(node_id: str) -> str:
        if node_id in done:
            return done[node_id]
        node = prompt[node_id]
        parts: list[Any] = [node["class_type"], file_hash(node["class_type"], node["inputs"])]
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            if is_link(value) and value[0] in prompt:
                parts.append([name, "link", sign(value[0]), value[1]])
            else:
                parts.append([name, value])
        text = json.dumps(parts, sort_keys=True, default=str)
        done[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return done[node_id]

    for node_id in prompt:
        sign(node_id)
    return done
