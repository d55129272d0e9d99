"""Presets from the config, served as MCP prompts (ARKA AI's presets, the MCP way)."""

from __future__ import annotations

import string
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument

from mcp_server.config import PresetConfig


def template_fields(template: str) -> list[str]:
    fields: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name not in fields:
            fields.append(name)
    return fields


def preset_prompt(name: str, preset: PresetConfig) -> Prompt:
    fields = template_fields(preset.template)

    def render(**arguments: Any) -> str:
        text = preset.template.format_map({field: str(arguments.get(field, "")) for field in fields})
        if preset.model:
            text += f"\n\n(Preset '{name}' suggests chat_complete with model '{preset.model}'.)"
        return text

    description = preset.description or f"Preset '{name}'"
    return Prompt(
        name=name,
        description=description,
        arguments=[
            PromptArgument(name=field, description=f"Fills {{{field}}} in the template", required=True)
            for field in fields
        ],
        fn=render,
    )


def register(mcp: MCPServer[Any], presets: dict[str, PresetConfig]) -> None:
    for name, preset in presets.items():
        mcp.add_prompt(preset_prompt(name, preset))
