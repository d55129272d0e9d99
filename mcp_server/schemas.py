"""Tool schemas as clients pay for them: flat, without pydantic's noise, and free to check per request.

pydantic's JSON schemas carry `$defs`/`$ref` indirections, `anyOf [T, null]` pairs and an auto-made
`title` on every node. Every client validates each structured result against the outputSchema
(the Python SDK with jsonschema: a `$ref` and an `anyOf` cost several times a plain `type`), every
model reads the inputSchema in its context window, and some clients do not follow `$ref` at all.
`tune_tools` rewrites each registered tool's schemas once, at build time, to the equivalent flat form.

It also spares the SDK a per-request walk: over streamable HTTP the SDK walks a tool's whole input
schema on every `tools/call` looking for `x-mcp-header` annotations (Mcp-Param-* header checks).
No genroute tool declares one, so the lookup answers None for such tools, which the SDK treats
as "nothing to check": the same outcome without the walk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from mcp_server.sdk_internals import SdkChanged, registered_tools, replace_tool_schemas, wrap_tool_input_schema_lookup

log = logging.getLogger("genroute")

X_MCP_HEADER = "x-mcp-header"
_LOCAL_DEFS = "#/$defs/"
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_SINGLE = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "additionalItems"}
)
_PRIMITIVE_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
# Keywords that constrain only instances of one type (JSON Schema 2020-12): any other value passes them.
_NUMBER_ONLY = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_TYPE_ONLY: dict[str, frozenset[str]] = {
    "object": frozenset(
        {"properties", "required", "additionalProperties", "patternProperties", "propertyNames"}
        | {"minProperties", "maxProperties", "dependentRequired", "dependentSchemas"}
    ),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "number": _NUMBER_ONLY,
    "integer": _NUMBER_ONLY,
}
_ANNOTATIONS = frozenset({"description", "default", "examples", "deprecated", "readOnly", "writeOnly"})


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same constraints, flat: local `$ref`s inlined (unless recursive), `anyOf` of bare types
    folded into a `type` list, `title` annotations dropped. `$defs` stays only if a `$ref` still needs it.
    """
    defs: dict[str, Any] = schema.get("$defs") or {}
    remaining: set[str] = set()

    def walk(node: Any, expanding: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_LOCAL_DEFS):
            name = ref.removeprefix(_LOCAL_DEFS)
            if name in defs and name not in expanding:
                siblings = walk({k: v for k, v in node.items() if k != "$ref"}, expanding)
                return {**walk(defs[name], (*expanding, name)), **siblings}
            remaining.add(name)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: walk(sub, expanding) for name, sub in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [walk(sub, expanding) for sub in value]
            elif key in _SCHEMA_SINGLE:
                out[key] = walk(value, expanding)
            else:  # instance data (default, enum, const, examples) and plain keywords: as they are
                out[key] = value
        folded = _fold_any_of(out.get("anyOf"))
        if folded is not None and "type" not in out:
            del out["anyOf"]
            out["type"] = folded
        return _fold_nullable(out)

    result = walk(schema, ())
    if remaining:  # a recursive model: keep the definitions its $refs point into
        result["$defs"] = {name: walk(defs[name], (name,)) for name in defs}
    return result


def _fold_any_of(branches: Any) -> list[str] | None:
    """`[{type: a}, {type: b}]` -> `[a, b]`; None when any branch says more than its type."""
    if not isinstance(branches, list) or not branches:
        return None
    types: list[str] = []
    for branch in branches:
        if not (isinstance(branch, dict) and set(branch) == {"type"} and branch["type"] in _PRIMITIVE_TYPES):
            return None
        types.append(branch["type"])
    return types


def _fold_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf [{type: T, <keywords of T only>}, {type: null}]` -> `{type: [T, null], <those keywords>}`: the same
    instances pass, and a validator no longer tries (and fails, building an error) one branch for every null.
    Anything else comes back as it was."""
    branches = node.get("anyOf")
    if "type" in node or not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    typed = branches[1 - branches.index({"type": "null"})]
    kind = typed.get("type") if isinstance(typed, dict) else None
    if kind not in _TYPE_ONLY:
        return node
    constraints = set(typed) - {"type"} - _ANNOTATIONS
    if not constraints <= _TYPE_ONLY[kind] or constraints & set(node):
        return node
    out = {key: value for key, value in node.items() if key != "anyOf"}
    for key, value in typed.items():
        if key != "type" and key not in out:  # the outer node's own annotations win
            out[key] = value
    out["type"] = [kind, "null"]
    return out


def declares_param_headers(schema: Any) -> bool:
    """True when any node of `schema` carries an `x-mcp-header` annotation."""
    if isinstance(schema, dict):
        return X_MCP_HEADER in schema or any(declares_param_headers(value) for value in schema.values())
    if isinstance(schema, list):
        return any(declares_param_headers(item) for item in schema)
    return False


def tune_tools(mcp: Any) -> None:
    """Compact every registered tool's schemas and skip the SDK's header walk for tools that need none.

    Reaches into SDK internals (sdk_internals.py): when they are not there, it changes nothing, as the tools
    work the same either way, only slower.
    """
    try:
        for tool in registered_tools(mcp):
            output = tool.fn_metadata.output_schema
            replace_tool_schemas(tool, compact_schema(tool.parameters), compact_schema(output) if output else None)
        wrap_tool_input_schema_lookup(mcp, _skip_unannotated)
    except SdkChanged as exc:
        log.warning("tool schemas left as the SDK made them: %s", exc)


def _skip_unannotated(
    lookup: Callable[[str], Mapping[str, Any] | None],
) -> Callable[[str], Mapping[str, Any] | None]:
    """The SDK's input-schema lookup, answering None for schemas without `x-mcp-header` (memoised per schema)."""
    verdicts: dict[int, tuple[Mapping[str, Any], bool]] = {}

    def cheap_lookup(name: str) -> Mapping[str, Any] | None:
        schema = lookup(name)
        if schema is None:
            return None
        known = verdicts.get(id(schema))
        if known is None or known[0] is not schema:
            known = (schema, declares_param_headers(schema))
            verdicts[id(schema)] = known
        return schema if known[1] else None

    return cheap_lookup
