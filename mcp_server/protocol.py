"""Protocol utilities MCPServer leaves unanswered (-32601): logging/setLevel and completion/complete. Clients and
the conformance suite call them; genroute answers them properly. resources/subscribe is not served (nor
subscriptions/listen, see server.py): no resource of genroute's notifies of changes, so it advertises none.

Also three fixes at the protocol edge, in server middleware (so they cover every tool and prompt):
- arguments that fail a tool's input schema get genroute's error envelope (naming the argument and what is
  wrong) instead of the SDK's raw pydantic text, which repeats the input and carries no envelope;
- each tool's advertised outputSchema also admits the error envelope. Error results carry it as
  structuredContent, and strict clients (the TypeScript SDK 1.x, the MCP Inspector 2.x) validate even an
  isError result against outputSchema: without this branch they hide genroute's error behind a -32602
  "does not match the tool's output schema";
- prompts/get for an unknown prompt or without a required argument is a -32602 error saying which, where the SDK
  answers a generic error (code 0 or -32603) and logs a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
)
from pydantic import ValidationError

from mcp_server.access import identity
from mcp_server.catalog import Catalog
from mcp_server.errors import ErrorBody, GatewayError, invalid_argument
from mcp_server.schemas import compact_schema
from mcp_server.sdk_internals import add_request_handler, tool_lookup

MODEL_TEMPLATE = "models://{+model_id}"
MAX_COMPLETIONS = 100  # the spec's ceiling per answer
MAX_REPORTED_ERRORS = 3
MAX_LISTED_PROMPTS = 20


async def set_level(_: ServerRequestContext[Any], __: SetLevelRequestParams) -> EmptyResult:
    """Accepted at any level: genroute sends no log notifications (its logs go to stderr), so none is filtered."""
    return EmptyResult()


def complete_model_ids(catalog: Catalog, prefix: str) -> Completion:
    """Catalog ids and aliases starting with `prefix` (case-insensitive), ids first."""
    wanted = prefix.lower()
    names: list[str] = []
    for card in catalog.cards(None, identity.current().policy.allows):  # only the caller's models
        for name in (card.id, *card.aliases):
            if name.lower().startswith(wanted) and name not in names:
                names.append(name)
    return Completion(values=names[:MAX_COMPLETIONS], total=len(names), has_more=len(names) > MAX_COMPLETIONS)


class ProtocolShaping:
    """Server middleware for genroute's two rewrites of SDK answers, in wire form (one layer on every request):
    - tools/call: when arguments fail the tool's own argument model, the SDK's isError answer (raw pydantic
      text, no envelope) gets genroute's envelope instead; the SDK's result framing is kept, only content and
      structuredContent change;
    - tools/list: every outputSchema also admits the error envelope.
    And before prompts/get: an unknown prompt or a missing argument is refused with -32602."""

    def __init__(self, mcp: MCPServer[Any]) -> None:
        self.mcp = mcp
        self.tool = tool_lookup(mcp)  # MCPServer has no public lookup of a tool's argument model

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "prompts/get":
            await self.check_prompt(ctx.params)
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        # Only an error result can come from bad arguments: a successful call is not validated a second time.
        if ctx.method == "tools/call" and result.get("isError"):
            error = self.argument_error(ctx)
            if error is not None:
                text = [{"type": "text", "text": error.message}]
                return {**result, "content": text, "structuredContent": error.to_dict()}
        elif ctx.method == "tools/list" and isinstance(result.get("tools"), list):
            return {**result, "tools": [_admitting_errors(tool) for tool in result["tools"]]}
        return result

    def argument_error(self, ctx: ServerRequestContext[Any, Any]) -> GatewayError | None:
        params = ctx.params
        if not isinstance(params, Mapping) or not isinstance(params.get("name"), str):
            return None
        arguments = params.get("arguments")
        tool = self.tool(params["name"])
        if tool is None or (arguments is not None and not isinstance(arguments, Mapping)):
            return None  # unknown tool or non-object arguments: the SDK's own answers stand
        try:
            tool.fn_metadata.validate_arguments(dict(arguments or {}))
        except ValidationError as exc:
            return describe(tool.name, exc)
        except Exception:  # a validator that crashes is the SDK's to report (generically)
            return None
        return None

    async def check_prompt(self, params: Any) -> None:
        """Raise -32602 naming the problem when prompts/get names no prompt served or leaves out a required
        argument; malformed params are left to the SDK's own validation (also -32602)."""
        if not isinstance(params, Mapping) or not isinstance(params.get("name"), str):
            return
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            return
        prompts = {prompt.name: prompt for prompt in await self.mcp.list_prompts()}
        prompt = prompts.get(params["name"])
        if prompt is None:
            names = sorted(prompts)
            listed = ", ".join(names[:MAX_LISTED_PROMPTS]) + (", ..." if len(names) > MAX_LISTED_PROMPTS else "")
            raise MCPError(
                INVALID_PARAMS,
                f"Unknown prompt {params['name'][:64]!r}. Prompts on this server: {listed or 'none'} (prompts/list).",
            )
        missing = [arg.name for arg in prompt.arguments or [] if arg.required and arg.name not in arguments]
        if missing:
            raise MCPError(
                INVALID_PARAMS,
                f"Prompt '{prompt.name}' needs the argument(s) {', '.join(missing)}; "
                f"prompts/list describes its arguments.",
            )


def describe(tool: str, error: ValidationError) -> GatewayError:
    """Which arguments are wrong and what is allowed, without echoing the values back."""
    problems = error.errors(include_url=False, include_input=False)
    places = [".".join(str(part) for part in p["loc"]) or "arguments" for p in problems]
    details = [f"`{place}`: {p['msg']}" for place, p in zip(places, problems, strict=True)]
    more = len(details) - MAX_REPORTED_ERRORS
    text = "; ".join(details[:MAX_REPORTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")
    return invalid_argument(
        places[0].split(".")[0],
        f"Invalid arguments for {tool}: {text}. The tool's inputSchema lists what is allowed.",
    )


def _error_result_schema() -> dict[str, Any]:
    """The JSON schema of an error result's structuredContent (GatewayError.to_dict)."""
    body = compact_schema(ErrorBody.model_json_schema())  # flat, as every tool schema (schemas.py)
    body["properties"]["retry_after_s"] = {"type": ["number", "null"]}
    return {
        "type": "object",
        "properties": {"error": body, "partial_text": {"type": "string"}},
        "required": ["error"],
    }


ERROR_RESULT_SCHEMA = _error_result_schema()


def with_error_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or the error envelope; `$defs` stay at the root so the original `#/$defs/...` refs resolve."""
    if schema.get("x-genroute-errors"):
        return schema
    success = {k: v for k, v in schema.items() if k != "$defs"}
    wrapped: dict[str, Any] = {"type": "object", "anyOf": [success, ERROR_RESULT_SCHEMA], "x-genroute-errors": True}
    if "$defs" in schema:
        wrapped["$defs"] = schema["$defs"]
    return wrapped


def _admitting_errors(tool: Any) -> Any:
    if isinstance(tool, dict) and isinstance(tool.get("outputSchema"), dict):
        return {**tool, "outputSchema": with_error_branch(tool["outputSchema"])}
    return tool


def register(mcp: MCPServer[Any], catalog: Callable[[], Catalog]) -> None:
    """`catalog` gives the catalog of the request being served (a reload may have replaced it)."""
    mcp.middleware.append(ProtocolShaping(mcp))
    add_request_handler(mcp, "logging/setLevel", SetLevelRequestParams, set_level)

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, ResourceTemplateReference) and ref.uri == MODEL_TEMPLATE and argument.name == "model_id":
            return complete_model_ids(catalog(), argument.value)
        return None  # preset arguments are free text: nothing to suggest
