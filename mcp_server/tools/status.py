"""status://providers: each provider's health as this server sees it, and the rules that act on it."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from mcp_server.config import RoutingConfig
from mcp_server.gateway import Gateway
from mcp_server.reliability.health import ProviderHealth


class ProviderStatus(BaseModel):
    providers: list[ProviderHealth]
    routing: RoutingConfig


def provider_status(gateway: Gateway) -> ProviderStatus:
    health = gateway.router.reliability.health
    return ProviderStatus(providers=health.snapshot(gateway.router.adapters), routing=gateway.config.routing)


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.resource(
        "status://providers",
        name="providers",
        description="Each provider's health: ok, degraded (recent failure rate) or cooling down until a time, "
        "with the last error; plus the retry, fallback and cooldown settings in force",
        mime_type="application/json",
    )
    def providers_resource() -> str:
        return provider_status(gateway).model_dump_json(indent=2)
