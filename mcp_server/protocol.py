"""Protocol utilities MCPServer leaves unanswered (-32601): logging/setLevel, resources/(un)subscribe and
completion/complete. Clients and the conformance suite call them; genroute answers them properly.
"""

from __future__ import annotations

import weakref
from typing import Any

from mcp.server.context import ServerRequestContext
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

from mcp_server.catalog import Catalog

MODEL_TEMPLATE = "models://{+model_id}"
MAX_COMPLETIONS = 100  # the spec's ceiling per answer


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


def register(mcp: MCPServer[Any], catalog: Catalog) -> SessionState:
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
