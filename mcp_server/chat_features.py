"""What a chat call may ask beyond text, checked against the model's card before anything is sent, and the JSON
answer checked when it comes back: images (vision), `response_format` (JSON or a JSON Schema) and tools.

A model that cannot do what the call asks is refused up front, naming the models that can, rather than sending
a request the upstream would reject or, worse, silently ignore.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from mcp_server.catalog import Catalog, ModelCard
from mcp_server.errors import InvalidJsonAnswer, invalid_argument

ResponseFormat = Literal["text", "json"] | dict[str, Any]
_NAME_JUNK = re.compile(r"[^a-zA-Z0-9_-]+")
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TOOLS = 128  # OpenAI's own limit on function definitions in one request
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*)\n\s*```$", re.DOTALL)


def require_features(
    card: ModelCard, catalog: Catalog, *, images: int = 0, response_format: ResponseFormat | None = None, tools: bool
) -> None:
    """Refuse a call its model's card says it cannot take, naming the chat models that can."""
    wanted = (
        ("images", images > 0, "vision", "take images", "images_not_supported"),
        ("response_format", response_format not in (None, "text"), "structured_output", "answer in JSON", None),
        ("tools", tools, "tools", "call tools", None),
    )
    for param, asked, field, what, code in wanted:
        if asked and not getattr(card, field):
            able = [c.id for c in catalog.cards("chat") if getattr(c, field)]
            which = f"Models that {what}: {', '.join(able)}." if able else f"No configured model can {what}."
            raise invalid_argument(
                "model" if param == "images" else param,
                f"Model '{card.id}' cannot {what} (its card has no {field} = true). {which} Pick one as `model`"
                f"{', or send text only' if param == 'images' else f', or leave out `{param}`'}.",
                code=code or f"{field}_not_supported",
            )


def upstream_format(value: ResponseFormat | None) -> dict[str, Any] | None:
    """The OpenAI `response_format` for `value`: none for text, json_object, or a strict json_schema."""
    if value is None or value == "text":
        return None
    if value == "json":
        return {"type": "json_object"}
    if not isinstance(value, dict):
        raise invalid_argument("response_format", 'response_format is "text", "json" or a JSON Schema object.')

    check_schema(value, "response_format")
    name = _NAME_JUNK.sub("_", str(value.get("title") or "answer"))[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": value, "strict": True}}


def check_schema(schema: dict[str, Any], param: str) -> None:
    """A JSON Schema genroute can check answers against: valid, and every `$ref` local and resolvable. A remote
    `$ref` is refused rather than fetched (genroute fetches nothing a caller names without its URL guard)."""
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise invalid_argument(param, f"{param} is not a valid JSON Schema: {exc.message}") from None
    for ref in _refs(schema):
        if not _resolves(schema, ref):
            raise invalid_argument(
                param,
                f"{param} has `$ref: {ref[:80]}`, which does not point inside the schema. Only local references "
                '("#/$defs/Name") are allowed: put the referenced schema under $defs.',
            )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolves(schema: dict[str, Any], ref: str) -> bool:
    """`ref` is "#" or a JSON Pointer "#/..." that leads to a schema inside `schema`."""
    if not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
        return False
    node: Any = schema
    for raw in ref[2:].split("/") if len(ref) > 1 else []:
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return False
    return isinstance(node, (dict, bool))


def check_tools(tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any] | None) -> None:
    """OpenAI function definitions, checked before sending: an upstream would answer a malformed one with a 400
    blamed on genroute, or, worse, ignore it."""
    names: list[str] = []
    if len(tools or []) > MAX_TOOLS:
        raise invalid_argument("tools", f"At most {MAX_TOOLS} tools in one call; got {len(tools or [])}.")
    for i, tool in enumerate(tools or []):
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise invalid_argument("tools", f'tools[{i}] must be {{"type": "function", "function": {{name, ...}}}}.')
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise invalid_argument("tools", f"tools[{i}].function.name must be 1-64 letters, digits, _ or -.")
        if name in names:
            raise invalid_argument("tools", f"tools[{i}]: two tools are named '{name}'.")
        names.append(name)
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise invalid_argument("tools", f"tools[{i}].function.parameters must be a JSON Schema object.")
            check_schema(parameters, f"tools[{i}].function.parameters")
    if tool_choice is None or tool_choice in ("auto", "none"):
        return
    if not names:
        raise invalid_argument("tool_choice", "`tool_choice` needs `tools`: pass the functions the model may call.")
    if tool_choice == "required":
        return
    chosen = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
    if chosen not in names:
        raise invalid_argument(
            "tool_choice",
            '`tool_choice` is "auto", "none", "required" or {"type": "function", "function": {"name": N}} with N one '
            f"of the tools: {', '.join(names)}.",
        )


def parse_json_answer(text: str, value: ResponseFormat | None, *, cut: bool = False) -> Any:
    """The answer's JSON value, checked against the schema; InvalidJsonAnswer (carrying `text`) when it is not.
    A Markdown code fence around the JSON, which some models add, is taken off. `cut`: the answer stopped at
    max_tokens (finish_reason "length"), which the error then says, as the likely cause."""
    body = text.strip()
    fenced = _FENCE.match(body)
    try:
        parsed = json.loads(fenced.group(1) if fenced else body)
    except ValueError as exc:
        why = " It stopped at max_tokens: raise `max_tokens` and ask again." if cut else ""
        problem = f"The model's answer is not valid JSON ({exc}); the raw answer is in raw_text.{why}"
        raise InvalidJsonAnswer(problem, text) from None
    if value == "json" and not isinstance(parsed, dict):
        raise InvalidJsonAnswer("The model's answer is JSON but not an object; the raw answer is in raw_text.", text)
    if isinstance(value, dict):
        from jsonschema import validators

        error = next(iter(validators.validator_for(value)(value).iter_errors(parsed)), None)
        if error is not None:
            where = "/".join(str(step) for step in error.absolute_path) or "(the whole answer)"
            raise InvalidJsonAnswer(
                f"The model's JSON does not match the schema at {where}: {error.message}. The raw answer is in "
                "raw_text.",
                text,
            )
    return parsed
