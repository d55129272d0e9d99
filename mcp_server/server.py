"""The MCP surface: one MCPServer with genroute's tools, resources and prompts, transport-agnostic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from mcp_server import __version__, protocol
from mcp_server.gateway import Gateway
from mcp_server.http_app import add_media_route
from mcp_server.schemas import tune_tools
from mcp_server.tools import catalog, chat, image, media_resources, presets, status, usage, video

INSTRUCTIONS = (
    "genroute routes generation requests to AI providers. Call list_models to see what is on offer, "
    "then chat_complete to talk to a chat model, generate_image for images, and generate_video for videos "
    "(long videos return a job_id: call get_video_status with it). Saved files are media:// resources. "
    "get_usage shows what has been spent and the budget left."
)


def build_server(gateway: Gateway) -> MCPServer[Any]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[Gateway]:
        async with gateway.running():
            yield gateway

    mcp: MCPServer[Any] = MCPServer(
        "genroute",
        title="genroute",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    chat.register(mcp, gateway)
    catalog.register(mcp, gateway)
    usage.register(mcp, gateway)
    presets.register(mcp, gateway.config.presets)
    image.register(mcp, gateway)
    video.register(mcp, gateway)
    media_resources.register(mcp, gateway)
    add_media_route(mcp, gateway.media)
    status.register(mcp, gateway)
    protocol.register(mcp, gateway.catalog)  # it wraps every tool registered above
    tune_tools(mcp)  # last: the schemas of every tool, as registered and wrapped
    return mcp
