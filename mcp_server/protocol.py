"""Protocol utilities MCPServer leaves unanswered (-32601): logging/setLevel, resources/(un)subscribe and
completion/complete. Clients and the conformance suite call them; genroute answers them properly.

Also: arguments that fail a tool's input schema get genroute's error envelope (naming the argument and
what is wrong) instead of the SDK's raw pydantic text, which repeats the input and carries no envelope.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    LoggingLevel,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import ValidationError

from mcp_server.catalog import Catalog
from mcp_server.errors import GatewayError, invalid_argument
from mcp_server.tools.results import failed

MODEL_TEMPLATE = "models://{+model_id}"
MAX_COMPLETIONS = 100  # the spec's ceiling per answer
MAX_REPORTED_ERRORS = 3


class SessionState:
    """Per-session protocol state: the log level the client asked for and the resources it watches.
    Keyed weakly by session, so a closed session's entry goes with it."""

    def __init__(self) -> None:
        self._levels: weakref.WeakKeyDictionary[Any, LoggingLevel] = weakref.WeakKeyDictionary()
        self._watched: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def log_level(self, session: Any) -> LoggingLevel | None:
        return self._levels.get(session)

    def subscriptions(self, session: Any) -> frozenset[str]:
        return frozenset(self._watched.get(session, ()))

    async def set_level(self, ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        self._levels[ctx.session] = params.level
        return EmptyResult()

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        self._watched.setdefault(ctx.session, set()).add(params.uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self._watched.get(ctx.session, set()).discard(params.uri)
        return EmptyResult()


def complete_model_ids(catalog: Catalog, prefix: str) -> Completion:
    """Catalog ids and aliases starting with `prefix` (case-insensitive), ids first."""
    wanted = prefix.lower()
    names: list[str] = []
    for card in catalog.cards():
        for name in (card.id, *card.aliases):
            if name.lower().startswith(wanted) and name not in names:
                names.append(name)
    return Completion(values=names[:MAX_COMPLETIONS], total=len(names), has_more=len(names) > MAX_COMPLETIONS)


class ArgumentErrors:
    """Server middleware: check tools/call arguments against the tool's own argument model first, and answer
    a mismatch with the error envelope. Valid arguments go on untouched (the SDK validates them again)."""

    def __init__(self, mcp: MCPServer[Any]) -> None:
        self.mcp = mcp

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, Mapping) or not isinstance(params.get("name"), str):
            return await call_next(ctx)
        arguments = params.get("arguments")
        # MCPServer exposes no public lookup of a tool's argument model; its tool manager is where it lives.
        tool = self.mcp._tool_manager.get_tool(params["name"])
        if tool is None or (arguments is not None and not isinstance(arguments, Mapping)):
            return await call_next(ctx)  # unknown tool or non-object arguments: the SDK's own answers
        try:
            tool.fn_metadata.validate_arguments(dict(arguments or {}))
        except ValidationError as error:
            return failed(describe(tool.name, error))
        return await call_next(ctx)


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


def register(mcp: MCPServer[Any], catalog: Catalog) -> SessionState:
    mcp.middleware.append(ArgumentErrors(mcp))
    state = SessionState()
    # MCPServer has no public hook for these three; the low-level server's add_request_handler is the SDK's way.
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, state.set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, state.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, state.unsubscribe)

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, ResourceTemplateReference) and ref.uri == MODEL_TEMPLATE and argument.name == "model_id":
            return complete_model_ids(catalog, argument.value)
        return None  # preset arguments are free text: nothing to suggest

    return state
