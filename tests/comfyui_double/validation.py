"""POST /prompt validation, reproducing ComfyUI 0.3.64's answers
(docs/comfyui.md#submitting-a-prompt, captured/prompt_error_*.json).

The walk mirrors the real one on purpose, because clients see its quirks: each output node is
validated depth-first with a shared ``validated`` memo; errors found while validating one output
are attached to every already-failed node (so ``dependent_outputs`` may list outputs that do not
depend on a node); ``error.details`` holds only the output nodes' own errors; a link to a missing
node or output index is a Python ``KeyError``/``IndexError`` reported as
``exception_during_validation`` on the consuming node. Inputs are coerced in place (``8`` becomes
``8.0`` for a FLOAT), so the queue and history show the coerced prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.comfyui_double.schema import NodeSchemas, combo_choices

Error = dict[str, Any]
Prompt = dict[str, Any]
FileCheck = Callable[[str, str, str], str | None]

# Nodes with their own VALIDATE_INPUTS: the named input skips list/min/max checks and is checked
# by a file test instead (docs/comfyui.md#submitting-a-prompt, case m).
CUSTOM_VALIDATED = {
    "LoadImage": "image",
    "LoadImageMask": "image",
    "VHS_LoadVideo": "video",
    "VHS_LoadVideoPath": "video",
}

FAKE_TRACEBACK = {
    "KeyError": "    o_class_type = prompt[o_id]['class_type']\n",
    "IndexError": "    received_type = r[val[1]]\n",
}


@dataclass
class Verdict:
    """What POST /prompt answers: ``ok`` with the outputs to run, or the error and node errors."""

    ok: bool
    error: Error | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def _prompt_error(kind: str, message: str, details: str) -> Verdict:
    return Verdict(False, {"type": kind, "message": message, "details": details, "extra_info": {}})


def full_type_name(exc: BaseException) -> str:
    module = type(exc).__module__
    name = type(exc).__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def _exception_error(exc: Exception, root: str) -> Error:
    line = FAKE_TRACEBACK.get(type(exc).__name__, "    ...\n")
    return {
        "type": "exception_during_validation",
        "message": "Exception when validating node",
        "details": str(exc),
        "extra_info": {
            "exception_type": full_type_name(exc),
            "traceback": [
                f'  File "{root}/execution.py", line 1010, in validate_prompt\n'
                "    m = await validate_inputs(prompt_id, prompt, o, validated)\n",
                f'  File "{root}/execution.py", line 788, in validate_inputs\n{line}',
            ],
        },
    }


class PromptValidator:
    """Validates one prompt against the live schemas; create one per POST."""

    def __init__(self, schemas: NodeSchemas, file_check: FileCheck, root: str) -> None:
        self.schemas = schemas
        self.file_check = file_check
        self.root = root
        self.validated: dict[str, tuple[bool, list[Error]]] = {}

    def validate(self, prompt: Prompt, targets: list[str] | None) -> Verdict:
        outputs, early = self._find_outputs(prompt, targets)
        if early is not None:
            return early
        good: list[str] = []
        failed: list[tuple[str, list[Error]]] = []
        node_errors: dict[str, Any] = {}
        for output_id in outputs:
            valid, reasons = self._validate_output(prompt, output_id)
            if valid:
                good.append(output_id)
                continue
            failed.append((output_id, reasons))
            self._attach_node_errors(prompt, output_id, node_errors)
        if good:
            return Verdict(True, None, good, node_errors)
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in failed for e in errs)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return Verdict(False, error, [], node_errors)

    def _find_outputs(
        self, prompt: Prompt, targets: list[str] | None
    ) -> tuple[list[str], Verdict | None]:
        outputs = []
        for node_id, node in prompt.items():
            if "class_type" not in node:
                message = "Cannot execute because a node is missing the class_type property."
                return [], _prompt_error("invalid_prompt", message, f"Node ID '#{node_id}'")
            class_type = node["class_type"]
            if not self.schemas.has(class_type):
                message = f"Cannot execute because node {class_type} does not exist."
                return [], _prompt_error("invalid_prompt", message, f"Node ID '#{node_id}'")
            if self.schemas.is_output_node(class_type) and (targets is None or node_id in targets):
                outputs.append(node_id)
        if not outputs:
            return [], _prompt_error("prompt_no_outputs", "Prompt has no outputs", "")
        return outputs, None

    def _validate_output(self, prompt: Prompt, output_id: str) -> tuple[bool, list[Error]]:
        try:
            return self._validate_node(prompt, output_id)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            reasons = [_exception_error(exc, self.root)]
            self.validated[output_id] = (False, reasons)
            return False, reasons

    def _attach_node_errors(
        self, prompt: Prompt, output_id: str, node_errors: dict[str, Any]
    ) -> None:
        # Real quirk: every failed node seen so far gets this output as a dependent output.
        for node_id, (valid, reasons) in self.validated.items():
            if valid or not reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output_id)

    def _validate_node(self, prompt: Prompt, node_id: str) -> tuple[bool, list[Error]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = prompt[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        info = self.schemas.node_info(class_type)
        declared = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        required = info["input"].get("required", {})
        errors: list[Error] = []
        valid = True
        for name, spec in declared.items():
            if name not in inputs:
                if name in required:
                    errors.append(_missing(name))
                continue
            if isinstance(inputs[name], list):
                valid = self._check_link(prompt, node_id, name, spec, errors) and valid
            else:
                self._check_value(class_type, inputs, name, spec, errors)
        errors += self._custom_checks(class_type, inputs)
        result = (not errors and valid, errors)
        self.validated[node_id] = result
        return result

    def _check_link(
        self, prompt: Prompt, node_id: str, name: str, spec: list[Any], errors: list[Error]
    ) -> bool:
        link = prompt[node_id]["inputs"][name]
        info = _input_config(spec)
        if len(link) != 2:
            errors.append(_bad_link(name, info, link))
            return True
        source_id = link[0]
        source_class = prompt[source_id]["class_type"]  # KeyError for a missing node, as real
        received = self.schemas.outputs(source_class)[link[1]]  # IndexError, as real
        if not _types_match(received, spec[0]):
            errors.append(_type_mismatch(name, info, received, link))
            return True
        try:
            upstream_ok, _ = self._validate_node(prompt, source_id)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.validated[source_id] = (False, [_inner_error(exc, name, info, link, self.root)])
            return False
        return upstream_ok

    def _check_value(
        self,
        class_type: str,
        inputs: dict[str, Any],
        name: str,
        spec: list[Any],
        errors: list[Error],
    ) -> None:
        kind = spec[0]
        extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        info = _input_config(spec)
        value = inputs[name]
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        try:
            value = inputs[name] = _coerce(kind, value)
        except (TypeError, ValueError) as exc:
            errors.append(_conversion_error(kind, name, info, value, exc))
            return
        if CUSTOM_VALIDATED.get(class_type) == name:
            return
        problem = _range_or_choice_error(name, kind, extra, info, value, combo_choices(spec))
        if problem is not None:
            errors.append(problem)

    def _custom_checks(self, class_type: str, inputs: dict[str, Any]) -> list[Error]:
        name = CUSTOM_VALIDATED.get(class_type)
        if name is None or name not in inputs or isinstance(inputs[name], list):
            return []
        problem = self.file_check(class_type, name, str(inputs[name]))
        if problem is None:
            return []
        return [
            {
                "type": "custom_validation_failed",
                "message": "Custom validation failed for node",
                "details": f"{name} - {problem}",
                "extra_info": {"input_name": name},
            }
        ]


def _input_config(spec: list[Any]) -> list[Any]:
    return [spec[0], spec[1] if len(spec) > 1 else {}]


def _coerce(kind: Any, value: Any) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {
        "INT": int,
        "FLOAT": float,
        "STRING": str,
        "BOOLEAN": bool,
    }
    if isinstance(kind, str) and kind in converters:
        return converters[kind](value)
    return value


def _types_match(received: Any, wanted: Any) -> bool:
    """ComfyUI's validate_node_input: equal, or comma-separated unions that overlap; '*' is any."""
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return bool(got & want) or "*" in got or "*" in want


def _range_or_choice_error(
    name: str,
    kind: Any,
    extra: dict[str, Any],
    info: list[Any],
    value: Any,
    choices: list[Any] | None,
) -> Error | None:
    if "min" in extra and value < extra["min"]:
        return _value_error(
            "value_smaller_than_min",
            f"Value {value} smaller than min of {extra['min']}",
            name,
            info,
            value,
        )
    if "max" in extra and value > extra["max"]:
        return _value_error(
            "value_bigger_than_max",
            f"Value {value} bigger than max of {extra['max']}",
            name,
            info,
            value,
        )
    if choices is not None and value not in choices:
        listed = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
        config = None if len(choices) > 20 else info
        error = _value_error("value_not_in_list", "Value not in list", name, config, value)
        error["details"] = f"{name}: '{value}' not in {listed}"
        return error
    return None


def _value_error(kind: str, message: str, name: str, info: Any, value: Any) -> Error:
    return {
        "type": kind,
        "message": message,
        "details": name,
        "extra_info": {"input_name": name, "input_config": info, "received_value": value},
    }


def _missing(name: str) -> Error:
    return {
        "type": "required_input_missing",
        "message": "Required input is missing",
        "details": name,
        "extra_info": {"input_name": name},
    }


def _bad_link(name: str, info: list[Any], link: Any) -> Error:
    return {
        "type": "bad_linked_input",
        "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
        "details": name,
        "extra_info": {"input_name": name, "input_config": info, "received_value": link},
    }


def _type_mismatch(name: str, info: list[Any], received: Any, link: list[Any]) -> Error:
    return {
        "type": "return_type_mismatch",
        "message": "Return type mismatch between linked nodes",
        "details": f"{name}, received_type({received}) mismatch input_type({info[0]})",
        "extra_info": {
            "input_name": name,
            "input_config": info,
            "received_type": received,
            "linked_node": link,
        },
    }


def _conversion_error(kind: Any, name: str, info: list[Any], value: Any, exc: Exception) -> Error:
    return {
        "type": "invalid_input_type",
        "message": f"Failed to convert an input value to a {kind} value",
        "details": f"{name}, {value}, {exc}",
        "extra_info": {
            "input_name": name,
            "input_config": info,
            "received_value": value,
            "exception_message": str(exc),
        },
    }


def _inner_error(exc: Exception, name: str, info: list[Any], link: list[Any], root: str) -> Error:
    outer = _exception_error(exc, root)
    return {
        "type": "exception_during_inner_validation",
        "message": "Exception when validating inner node",
        "details": str(exc),
        "extra_info": {
            "input_name": name,
            "input_config": info,
            "exception_message": str(exc),
            "exception_type": full_type_name(exc),
            "traceback": outer["extra_info"]["traceback"],
            "linked_node": link,
        },
    }
