"""Provider adapters, one module per upstream protocol, chosen by the config's `protocol`."""

from __future__ import annotations

from mcp_server.config import ProviderConfig
from mcp_server.providers.base import ProviderAdapter
from mcp_server.providers.redact import Redactor


def build_adapter(name: str, config: ProviderConfig, redact: Redactor | None = None) -> ProviderAdapter:
    """`redact` scrubs this provider's failures: every configured secret (`redactor_for`), else its own key."""
    if config.protocol == "openai":
        from mcp_server.providers.openai import OpenAIAdapter

        return OpenAIAdapter(name, config, redact)
    if config.protocol == "aki":
        from mcp_server.providers.aki import AkiAdapter

        return AkiAdapter(name, config, redact)
    from mcp_server.providers.local import LocalAdapter

    return LocalAdapter(name, config)


__all__ = ["ProviderAdapter", "build_adapter"]
