"""Provider adapters, one module per upstream protocol, chosen by the config's `protocol`."""

from __future__ import annotations

from mcp_server.config import ProviderConfig
from mcp_server.providers.base import ProviderAdapter


def build_adapter(name: str, config: ProviderConfig) -> ProviderAdapter:
    if config.protocol == "openai":
        from mcp_server.providers.openai import OpenAIAdapter

        return OpenAIAdapter(name, config)
    if config.protocol == "aki":
        from mcp_server.providers.aki import AkiAdapter

        return AkiAdapter(name, config)
    from mcp_server.providers.local import LocalAdapter

    return LocalAdapter(name, config)


__all__ = ["ProviderAdapter", "build_adapter"]
