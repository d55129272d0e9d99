"""status://providers: each provider's health as this server sees it, and the rules that act on it."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from mcp_server.access import identity
from mcp_server.config import RoutingConfig
from mcp_server.gateway import Gateway
from mcp_server.reliability.health import ProviderHealth


class ProviderStatus(BaseModel):
    providers: list[ProviderHealth]
    routing: RoutingConfig


def provider_status(gateway: Gateway, *, admin: bool) -> ProviderStatus:
    """Every provider's health; upstream error texts only for admins, as another key's call may have caused them
    (they can quote its request). Others see each provider's state and counts."""
    providers = gateway.health.snapshot(gateway.adapters)
    if not admin:
        providers = [item.model_copy(update={"last_error": None, "last_error_at": None}) for item in providers]
    return ProviderStatus(providers=providers, routing=gateway.config.routing)


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.resource(
        "status://providers",
        name="providers",
        description="Each provider's health: ok, degraded (recent failure rate) or cooling down until a time, "
        "with the last error (admin keys only); plus the retry, fallback and cooldown settings in force",
        mime_type="application/json",
    )
    def providers_resource() -> str:
        return provider_status(gateway, admin=identity.current().admin).model_dump_json(indent=2)
