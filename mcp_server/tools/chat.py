"""chat_complete: one chat turn through the router, streamed as progress when the client asks for it."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.errors import invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.providers.base import ChatDelta, ChatMessage, TokenCounts
from mcp_server.tools.results import OptionalText, guarded, ok, progress_token
from mcp_server.usage.allowance import BudgetCap, cap_note

MAX_PROMPT_CHARS = 1_000_000


class ChatCompleteOutput(BaseModel):
    id: str
    model: str = Field(description="The catalog id of the model that answered")
    provider: str = Field(description="The provider that answered")
    fallback_from: str | None = Field(
        default=None, description="The model asked for, when it failed and this fallback answered instead"
    )
    content: str
    finish_reason: str | None
    usage: TokenCounts
    latency_ms: float
    budget_capped: BudgetCap | None = Field(
        default=None, description="Set when a budget limited the answer's length and the answer reached that limit"
    )


def build_messages(messages: list[ChatMessage] | None, prompt: str | None, system: str | None) -> list[ChatMessage]:
    if messages and prompt:
        raise invalid_argument("prompt", "Pass either `messages` or `prompt`, not both.")
    if not messages and not (prompt and prompt.strip()):
        raise invalid_argument("messages", "Pass `messages` (a list of {role, content}) or a non-empty `prompt`.")
    turns = list(messages) if messages else [ChatMessage(role="user", content=prompt or "")]
    size = sum(len(m.content) for m in turns)
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


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.tool(
        name="chat_complete",
        description=(
            "Send a conversation to a chat model and get its answer. Pass `prompt` for a single question or "
            "`messages` for a whole conversation. `model` takes an id or alias from list_models; leave it out "
            "for the default chat model."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True, idempotentHint=False),
    )
    @guarded
    async def chat_complete(
        ctx: Context,
        messages: Annotated[
            list[ChatMessage] | None,
            Field(description="The conversation, oldest first: [{role: system|user|assistant, content}]"),
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
    ) -> Annotated[CallToolResult, ChatCompleteOutput]:
        turns = build_messages(messages, prompt, system)
        streamed = 0

        async def on_delta(delta: ChatDelta) -> None:
            nonlocal streamed
            streamed += len(delta.text)
            await ctx.report_progress(streamed, None, delta.text)

        routed = await gateway.router.chat(
            model,
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
        )
        result = routed.value
        output = ChatCompleteOutput(
            id=result.id,
            model=routed.card.id,
            provider=routed.provider,
            fallback_from=routed.fallback_from,
            content=result.content,
            finish_reason=result.finish_reason,
            usage=result.usage,
            latency_ms=round(routed.latency_ms, 2),
            budget_capped=routed.budget_capped,
        )
        capped = routed.budget_capped
        return ok(output, text=f"{result.content}\n\n{cap_note(capped)}" if capped else result.content)
