"""list_models and the models:// resources: what the catalog offers, in the catalog's own card shape."""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.catalog import ModelCard
from mcp_server.config import Kind
from mcp_server.gateway import Gateway
from mcp_server.tools.results import guarded, ok


class ModelList(BaseModel):
    models: list[ModelCard]


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.tool(
        name="list_models",
        description="List the models on offer, with kind (chat, image, video, speech, transcription), provider, "
        "context window, pricing and aliases. Use an id or alias from here as `model` in the other tools.",
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    @guarded
    async def list_models(
        kind: Annotated[Kind | None, Field(description="Only models of this kind")] = None,
    ) -> Annotated[CallToolResult, ModelList]:
        cards = gateway.catalog.cards(kind, identity.current().policy.allows)  # a key sees only its models
        lines = [f"{c.id} ({c.kind}, {c.provider})" for c in cards] or ["no models configured"]
        return ok(ModelList(models=cards), text="\n".join(lines))

    @mcp.resource(
        "models://catalog",
        name="catalog",
        description="The whole model catalog as JSON",
        mime_type="application/json",
    )
    def catalog_resource() -> str:
        return ModelList(models=gateway.catalog.cards(None, identity.current().policy.allows)).model_dump_json(indent=2)

    @mcp.resource(
        "models://{+model_id}",
        name="model",
        description="One model's card: kind, provider, pricing, limits, aliases",
        mime_type="application/json",
    )
    def model_resource(model_id: str) -> str:
        card = gateway.catalog.get(model_id, identity.current().policy.allows)
        if card is None:
            raise ResourceError(f"Unknown model '{model_id}'. Read models://catalog for the ids on offer.")
        return json.dumps(card.model_dump(mode="json"), indent=2)
