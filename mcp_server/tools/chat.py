"""chat_complete: one chat turn through the router, streamed as progress when the client asks for it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.catalog import Catalog, ModelCard
from mcp_server.chat_features import ResponseFormat, check_tools, parse_json_answer, require_features, upstream_format
from mcp_server.errors import invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.media.chat_images import ImageSources, check_count, count_images, prepare_images
from mcp_server.providers.base import ChatDelta, ChatMessage, TokenCounts
from mcp_server.providers.messages import ImagePart, TextPart, ToolCall
from mcp_server.tools.results import OptionalText, absent_when_none, guarded, ok, progress_token
from mcp_server.usage.allowance import BudgetCap, cap_note

MAX_PROMPT_CHARS = 1_000_000


class ChatCompleteOutput(BaseModel):
    id: str
    model: str = Field(description="The catalog id of the model that answered")
    provider: str = Field(description="The provider that answered")
    fallback_from: str | None = absent_when_none(
        "The model asked for, when it failed and this fallback answered instead"
    )
    content: str
    finish_reason: str | None
    tool_calls: list[ToolCall] | None = absent_when_none(
        "The tools the model called: answer each with a role 'tool' message"
    )
    json_value: Any = Field(
        default=None, alias="json", description="The answer parsed as JSON, when response_format asked for JSON"
    )
    usage: TokenCounts
    latency_ms: float
    budget_capped: BudgetCap | None = absent_when_none(
        "Set when a budget limited the answer's length and the answer reached that limit"
    )


def build_messages(
    messages: list[ChatMessage] | None, prompt: str | None, system: str | None, images: list[str] | None = None
) -> list[ChatMessage]:
    if messages and prompt:
        raise invalid_argument("prompt", "Pass either `messages` or `prompt`, not both.")
    if not messages and not (prompt and prompt.strip()):
        raise invalid_argument("messages", "Pass `messages` (a list of {role, content}) or a non-empty `prompt`.")
    if images and not prompt:
        raise invalid_argument("images", "`images` go with `prompt`; in `messages`, put image parts in `content`.")
    if messages:
        turns = list(messages)
    elif images:
        parts = [TextPart(type="text", text=prompt or ""), *(ImagePart(type="image", image=i) for i in images)]
        turns = [ChatMessage(role="user", content=parts)]
    else:
        turns = [ChatMessage(role="user", content=prompt or "")]
    size = sum(len(m.text()) for m in turns)
    if size > MAX_PROMPT_CHARS:
        raise invalid_argument(
            "messages",
            f"The conversation is {size:,} characters; one call takes at most {MAX_PROMPT_CHARS:,} (`prompt` or "
            "all of `messages` together). Shorten it: drop or summarise older turns, or send a long document "
            "in parts.",
        )
    if system:
        turns.insert(0, ChatMessage(role="system", content=system))
    return turns


def smallest_image_px(card: ModelCard, catalog: Catalog) -> int:
    """Images are prepared once for every route the call may take: to the smallest `max_image_px` among them."""
    fallbacks = (catalog.get(name) for name in card.fallbacks)
    return min([card.max_image_px, *(c.max_image_px for c in fallbacks if c is not None)])


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    sources = ImageSources(
        registry=gateway.media,
        fetcher=gateway.fetcher,
        input_dir=gateway.config.server.input_dir,
        max_bytes=gateway.config.media.reference_max_bytes,
    )

    @mcp.tool(
        name="chat_complete",
        description=(
            "Send a conversation to a chat model and get its answer. Pass `prompt` for a single question or "
            "`messages` for a whole conversation. `model` takes an id or alias from list_models; leave it out "
            "for the default chat model. Vision models take `images`; `response_format` asks for JSON (parsed "
            "into `json`); with `tools` the model may answer with `tool_calls` to run and answer in role 'tool' "
            "messages."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True, idempotentHint=False),
    )
    @guarded
    async def chat_complete(
        ctx: Context,
        messages: Annotated[
            list[ChatMessage] | None,
            Field(
                description="The conversation, oldest first: [{role: system|user|assistant|tool, content}]; content "
                "is text or parts [{type: text, text}, {type: image, image}]"
            ),
        ] = None,
        prompt: Annotated[OptionalText, Field(description="A single user message (instead of `messages`)")] = None,
        model: Annotated[OptionalText, Field(description="Model id or alias (see list_models)")] = None,
        system: Annotated[OptionalText, Field(description="A system instruction put before the conversation")] = None,
        temperature: Annotated[float | None, Field(ge=0, le=2, description="Sampling temperature, 0-2")] = None,
        top_p: Annotated[float | None, Field(gt=0, le=1, description="Nucleus sampling, 0-1")] = None,
        max_tokens: Annotated[int | None, Field(ge=1, le=1_000_000, description="Upper limit of answer tokens")] = None,
        stop: Annotated[list[str] | None, Field(max_length=4, description="Up to 4 stop sequences")] = None,
        presence_penalty: Annotated[float | None, Field(ge=-2, le=2, description="-2 to 2")] = None,
        frequency_penalty: Annotated[float | None, Field(ge=-2, le=2, description="-2 to 2")] = None,
        seed: Annotated[int | None, Field(description="Seed for reproducible sampling where supported")] = None,
        images: Annotated[
            list[str] | None,
            Field(description="Images for `prompt`: media:// ids, input_dir files, base64, data: or http(s) URLs"),
        ] = None,
        response_format: Annotated[
            ResponseFormat | None, Field(description='"text" (default), "json", or a JSON Schema the answer must match')
        ] = None,
        tools: Annotated[
            list[dict[str, Any]] | None,
            Field(description="Functions the model may call: [{type: function, function: {name, parameters}}]"),
        ] = None,
        tool_choice: Annotated[
            str | dict[str, Any] | None,
            Field(description='"auto", "none", "required", or {type: function, function: {name}}'),
        ] = None,
        reasoning_effort: Annotated[
            Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None,
            Field(description="How hard a reasoning model thinks (models whose card declares reasoning_effort)"),
        ] = None,
    ) -> Annotated[CallToolResult, ChatCompleteOutput]:
        turns = build_messages(messages, prompt, system, images)
        card = gateway.catalog.resolve(model, "chat")
        pictures = count_images(turns)
        check_count(pictures)
        require_features(card, gateway.catalog, images=pictures, response_format=response_format, tools=bool(tools))
        upstream_response_format = upstream_format(response_format)
        check_tools(tools, tool_choice)
        if pictures:
            named = (lambda i, j: f"images[{j - 1}]") if images else None
            turns = await prepare_images(turns, sources, smallest_image_px(card, gateway.catalog), named)
        streamed = 0

        async def on_delta(delta: ChatDelta) -> None:
            nonlocal streamed
            streamed += len(delta.text)
            await ctx.report_progress(streamed, None, delta.text)

        routed = await gateway.router.chat(
            card.id,
            turns,
            caller=identity.current(),
            on_delta=on_delta if progress_token(ctx) is not None else None,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=stop,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            seed=seed,
            response_format=upstream_response_format,
            tools=tools,
            tool_choice=tool_choice,
            reasoning_effort=reasoning_effort,
        )
        result = routed.value
        wants_json = upstream_response_format is not None and not result.tool_calls
        cut = result.finish_reason == "length"
        parsed = parse_json_answer(result.content, response_format, cut=cut) if wants_json else None
        # ChatCompleteOutput's JSON form, built directly (the SDK validates it against that model: see `ok`);
        # the fields that do not apply to this answer are left out, as `absent_when_none` says
        output: dict[str, Any] = {
            "id": result.id,
            "model": routed.card.id,
            "provider": routed.provider,
            "content": result.content,
            "finish_reason": result.finish_reason,
            "usage": _json_form(result.usage),
            "latency_ms": round(routed.latency_ms, 2),
        }
        if routed.fallback_from is not None:
            output["fallback_from"] = routed.fallback_from
        if result.tool_calls is not None:
            output["tool_calls"] = [_json_form(c) for c in result.tool_calls]
        if wants_json:
            output["json"] = parsed
        if routed.budget_capped is not None:
            output["budget_capped"] = _json_form(routed.budget_capped)
        text = result.content or _calls_text(result.tool_calls)
        capped = routed.budget_capped
        return ok(output, text=f"{text}\n\n{cap_note(capped)}" if capped else text)


def _json_form(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _calls_text(calls: list[ToolCall] | None) -> str:
    """The text block of an answer that is only tool calls (clients that read only content see them too)."""
    return "\n".join(f"tool call {c.id}: {c.name}({json.dumps(c.arguments)})" for c in calls or [])
