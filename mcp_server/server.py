"""The MCP surface: one MCPServer with genroute's tools, resources and prompts, transport-agnostic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer

from mcp_server import __version__, collector, protocol
from mcp_server.gateway import Gateway
from mcp_server.http_app import add_media_route
from mcp_server.sdk_internals import advertise_list_changes

INSTRUCTIONS = (
    "genroute routes generation requests to AI providers. Call list_models to see what is on offer, "
    "then chat_complete to talk to a chat model and, where models of those kinds are configured, "
    "generate_image for images, generate_video for videos (long videos return a job_id: call get_video_status "
    "with it), generate_speech and transcribe_audio for audio. Saved files are media:// resources. "
    "get_usage shows what has been spent and the budget left."
)


def build_server(
    gateway: Gateway,
    *,
    defer_surface: bool = False,
    after_surface: Callable[[], None] | None = None,
    reload_on_sighup: bool = False,
    config_path: str | None = None,
) -> MCPServer[Any]:
    """The server; with `defer_surface`, its tools, resources and prompts are built on the first request
    after `initialize` (see `DeferredSurface`), so a stdio client gets its `initialize` answer sooner, and
    `after_surface` runs once that request is answered (work worth doing early, but not before `initialize`).
    With `reload_on_sighup` (`genroute serve`), SIGHUP reloads the config from `config_path` (reload.py).
    """
    from mcp.server.subscriptions import InMemorySubscriptionBus

    from mcp_server.reload import Reloader, SnapshotPin

    pin = SnapshotPin(gateway)
    bus = InMemorySubscriptionBus()

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[Gateway]:
        async with gateway.running(), anyio.create_task_group() as group:
            if reload_on_sighup:
                group.start_soon(Reloader(mcp, gateway, pin, config_path, bus).watch)
            try:
                yield gateway
            finally:
                group.cancel_scope.cancel()

    mcp: MCPServer[Any] = MCPServer(
        "genroute",
        title="genroute",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        # A reload changes the model lists and presets: 2026-07-28 clients hear of it on subscriptions/listen
        subscriptions=bus,
    )
    mcp.middleware.append(pin)  # outermost: a request keeps its snapshot through every other layer
    advertise_list_changes(mcp)  # 2025-11-25 sessions are told too (reload.py)
    # Capabilities (completions, logging) come from these handlers: they are in place before
    # `initialize`. Its middleware looks tools up when a request comes, so it covers tools registered later.
    if defer_surface:  # before protocol's middleware, which looks tools up
        mcp.middleware.append(DeferredSurface(mcp, lambda: register_surface(mcp, gateway), after_surface))
    protocol.register(mcp, lambda: gateway.catalog)
    add_media_route(mcp, gateway.media, gateway.config.server.media_retention_days)
    if not defer_surface:
        register_surface(mcp, gateway)
    return mcp


def register_surface(mcp: MCPServer[Any], gateway: Gateway) -> None:
    """Every tool, resource and prompt. The SDK derives each tool's argument model and JSON schemas here
    (most of the build's cost), and the tool modules are imported here, so a deferred build defers both."""
    from mcp_server.schemas import tune_tools
    from mcp_server.tools import audio, catalog, chat, image, media_resources, presets, status, usage, video

    chat.register(mcp, gateway)
    catalog.register(mcp, gateway)
    usage.register(mcp, gateway)
    presets.register(mcp, gateway.config.presets)
    # A media tool is listed only when the catalog has a model it can use: one that could only fail costs an
    # agent its description's tokens on every turn, and a wrong guess (discovered models are chat models).
    served = {card.kind for card in gateway.catalog.cards()}
    for kind, register in (
        ("image", image.register),
        ("video", video.register),
        ("speech", audio.register_speech),
        ("transcription", audio.register_transcription),
    ):
        if kind in served:
            register(mcp, gateway)
    media_resources.register(mcp, gateway)
    status.register(mcp, gateway)
    tune_tools(mcp)  # last: the schemas of every tool, as registered


class DeferredSurface:
    """Server middleware (outermost of genroute's) that runs `build` once, on the first request other than
    `initialize`: `initialize` needs only the capabilities, and every later request finds the surface built.
    `then` runs once that request is answered.

    `build` is synchronous, so no other request of any session can run while it is half done. Once it has run,
    the middleware takes itself out of the chain (the SDK composes the chain from the list on every request).
    """

    def __init__(self, mcp: MCPServer[Any], build: Callable[[], None], then: Callable[[], None] | None = None) -> None:
        self._mcp = mcp
        self._build: Callable[[], None] | None = build
        self._then = then

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if self._build is None or ctx.method == "initialize":
            return await call_next(ctx)
        self._build()
        self._build = None
        self._mcp.middleware.remove(self)
        collector.serving()  # startup is over: `serve` kept the collector off until now (cli/serve.py)
        try:
            return await call_next(ctx)
        finally:
            if self._then is not None:
                self._then()
