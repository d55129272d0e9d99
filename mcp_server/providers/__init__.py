"""Provider adapters, one module per upstream protocol, chosen by the config's `protocol`."""

from __future__ import annotations

from mcp_server.config import GatewayConfig, Protocol, ProviderConfig
from mcp_server.errors import ConfigError
from mcp_server.providers.base import ProviderAdapter
from mcp_server.providers.redact import Redactor


def adapter_class(protocol: Protocol) -> type[ProviderAdapter]:
    """The adapter that speaks `protocol` (its module imported on first use)."""
    if protocol == "openai":
        from mcp_server.providers.openai import OpenAIAdapter

        return OpenAIAdapter
    if protocol == "aki":
        from mcp_server.providers.aki import AkiAdapter

        return AkiAdapter
    from mcp_server.providers.local import LocalAdapter

    return LocalAdapter


def build_adapter(name: str, config: ProviderConfig, redact: Redactor | None = None) -> ProviderAdapter:
    return adapter_class(config.protocol)(name, config, redact)


# What a model asks of its adapter beyond its kind: (capability flag, the model setting that asks, what it is)
_NEEDS = {
    "speech": ("speech", "kind", "text to speech"),
    "transcription": ("transcription", "kind", "transcription"),
    "edits": ("image_edits", "image_input", "image edits (/images/edits)"),
}


def check_models(config: GatewayConfig) -> None:
    """Every model is of a kind its provider's adapter serves. A mismatch is a config error at start, not a
    refusal at call time (which would blame the caller and skip the model's fallbacks). Raises ConfigError."""
    for model_id, model in config.models.items():
        provider = config.providers[model.provider]  # that it exists is checked when the config is parsed
        adapter = adapter_class(provider.protocol)
        kinds = adapter.kinds
        need = _NEEDS.get("edits" if model.kind == "image" and model.image_input == "edits" else model.kind)
        if model.kind in kinds and need and not getattr(adapter, need[0]):
            raise ConfigError(
                config.source,
                f"models.{model_id}.{need[1]}",
                f"provider '{model.provider}' (protocol '{provider.protocol}') does not offer {need[2]}; put model "
                f"'{model_id}' on a provider whose protocol does (openai)",
            )
        if model.kind not in kinds:
            served = " and ".join(sorted(kinds))
            raise ConfigError(
                config.source,
                f"models.{model_id}.kind",
                f"provider '{model.provider}' (protocol '{provider.protocol}') serves {served} models only, not "
                f"'{model.kind}'; put model '{model_id}' on a provider whose protocol serves {model.kind} models",
            )
        adapter = adapter_class(provider.protocol)
        for field, able, what in (
            ("vision", adapter.image_inputs, "images in chat messages"),
            ("structured_output", adapter.structured_output, "response_format"),
            ("tools", adapter.tool_calls, "tool calls"),
        ):
            if getattr(model, field) and not able:
                raise ConfigError(
                    config.source,
                    f"models.{model_id}.{field}",
                    f"provider '{model.provider}' (protocol '{provider.protocol}') cannot send {what}; remove "
                    f"`{field} = true` or put model '{model_id}' on an OpenAI-compatible provider",
                )


__all__ = ["ProviderAdapter", "adapter_class", "build_adapter", "check_models"]
