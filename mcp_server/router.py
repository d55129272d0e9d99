"""The routing layer: model id -> catalog card -> provider adapter. Knows nothing of MCP or HTTP: whom a call is for
comes in as a `Caller` argument (the tool layer reads it from the request).

Every provider call goes through `Router.run`, the one place where a call is resolved, guarded,
attempted (retried, sent to fallbacks, skipped past cooling providers: see reliability/) and accounted for.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from mcp_server.access.principals import Caller
from mcp_server.catalog import Catalog, ModelCard, Visible
from mcp_server.config import Kind
from mcp_server.errors import GatewayError, ServerFault
from mcp_server.observability.observer import Observer
from mcp_server.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    ImageRequest,
    ImageResult,
    InputFile,
    ProviderAdapter,
    ToolCallFragment,
    VideoRequest,
    VideoStatus,
)
from mcp_server.providers.messages import assemble_tool_calls
from mcp_server.reliability.attempts import Attempted, Reliability
from mcp_server.usage.accountant import Accountant
from mcp_server.usage.allowance import AnswerAllowance, BudgetCap
from mcp_server.usage.cost import Quantities, chat_estimate

T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    """Where one attempt goes: the model's card and the adapter of its provider."""

    card: ModelCard
    adapter: ProviderAdapter


@dataclass(frozen=True)
class Routed(Generic[T]):
    """An answer and who gave it (after fallbacks this may differ from the model asked for)."""

    value: T
    card: ModelCard
    latency_ms: float
    fallback_from: str | None = None  # the model asked for, when one of its fallbacks answered
    attempts: int = 1  # upstream attempts made, retries and fallbacks included
    budget_capped: BudgetCap | None = None  # chat: a budget set the max_tokens the answer ran to

    @property
    def provider(self) -> str:
        return self.card.provider


Operation = Callable[[Route], Awaitable[T]]


def takes_images(card: ModelCard, count: int, mask: object | None) -> bool:
    """`card` can take `count` input images (and a mask): an "edits" model up to its max_reference_images, an
    "inline" one a single image and no mask."""
    if card.image_input == "edits":
        return count <= card.max_reference_images and (mask is None or count > 0)
    return count <= min(card.max_reference_images, 1) and mask is None


def new_idempotency_key() -> str:
    """One per logical paid call: every retry of that call sends the same key, so the provider bills it once."""
    return f"genroute-{uuid.uuid4().hex}"


class Router:
    def __init__(
        self,
        catalog: Catalog,
        adapters: dict[str, ProviderAdapter],
        reliability: Reliability | None = None,
        accountant: Accountant | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.catalog = catalog
        self.adapters = adapters
        self.reliability = reliability or Reliability(catalog)
        self.accountant = accountant or Accountant(None)
        self.observer = observer or Observer()
        self.in_flight = 0  # calls in `run` now: a reload closes this router's adapters once it is 0
        if self.observer.tracing:  # a span around each logical call; with traces off, not even a check per call
            self.run = self.observer.traced(self.run)  # type: ignore[method-assign]

    def resolve(self, requested: str | None, kind: Kind, caller: Caller | None = None) -> ModelCard:
        """The card a caller asks for; a model outside its key's allowlist is unknown to it."""
        policy = caller.policy if caller is not None else None
        if policy is not None and policy.restricts_models:
            card = self.catalog.resolve(requested, kind, policy.allows)
        else:
            card = self.catalog.resolve(requested, kind)
        self.observer.resolved(card.id)
        return card

    def route_for(self, card: ModelCard) -> Route:
        adapter = self.adapters.get(card.provider)
        if adapter is None:
            raise ServerFault(
                f"Model '{card.id}' belongs to provider '{card.provider}', which is not configured.",
                code="provider_not_configured",
            )
        return Route(card, adapter)

    async def run(
        self,
        card: ModelCard,
        operation: Operation[T],
        *,
        caller: Caller,
        tool: str | None = None,
        estimate: Quantities | None = None,
        job_id: str | None = None,
        metered: bool = True,
        resend_if_lost: bool = True,
        allowance: AnswerAllowance | None = None,
    ) -> Routed[T]:
        """Run one logical call against `card`'s provider or its fallbacks, guarded by the budget, in the ledger.

        `operation` may run several times (retries, fallbacks): build anything that must stay the same
        across attempts, such as an Idempotency-Key, outside it. Pass `resend_if_lost=False` for a paid
        submission (video) that must not be sent again when its answer was lost.
        `caller` is whom the call is for (the ledger records its identity); `tool` names the call in the
        ledger (default: the model's kind); `estimate` is what the call may use (default: one image, the longest
        video, a default-length answer); `job_id` ties a video submission to its job; `metered=False` is for
        calls that cost nothing and are part of another call (video status polls): no budget, no record;
        `allowance` (chat) lets a budget bound the answer: `operation` reads its max_tokens once admitted.
        """
        self.in_flight += 1
        try:
            return await self._run(card, operation, caller, tool, estimate, job_id, metered, resend_if_lost, allowance)
        finally:
            self.in_flight -= 1

    async def _run(
        self,
        card: ModelCard,
        operation: Operation[T],
        caller: Caller,
        tool: str | None,
        estimate: Quantities | None,
        job_id: str | None,
        metered: bool,
        resend_if_lost: bool,
        allowance: AnswerAllowance | None,
    ) -> Routed[T]:
        self.route_for(card)  # an unconfigured provider fails here, before any attempt
        policy = caller.policy
        if policy.restricts_models and not policy.allows(card):  # callers resolve first; this is the backstop
            self.catalog.resolve(card.id, card.kind, policy.allows)  # raises the "unknown model" a caller sees
        async with self.accountant.metered(
            card,
            tool=tool or card.kind,
            caller=caller.id,
            estimate=estimate,
            job_id=job_id,
            enabled=metered,
            allowance=allowance,
            policy=policy,
        ) as meter:
            started = time.perf_counter()
            done = await self._attempt(
                card, operation, resend_if_lost, policy.allows if policy.restricts_models else None
            )
            routed = Routed(
                value=done.value,
                card=done.card,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                fallback_from=done.fallback_from,
                attempts=done.attempts,
            )
            meter.done(routed)
        return routed

    async def _attempt(
        self, card: ModelCard, operation: Operation[T], resend_if_lost: bool, visible: Visible | None
    ) -> Attempted[T]:
        """The retry loop (reliability/attempts.py) around `operation`, one route per candidate model; `visible`
        keeps a key's calls off the fallbacks it may not use."""

        async def call(candidate: ModelCard) -> T:
            return await operation(self.route_for(candidate))

        return await self.reliability.attempt(card, call, resend_if_lost=resend_if_lost, visible=visible)

    async def chat(
        self,
        requested: str | None,
        messages: list[ChatMessage],
        *,
        caller: Caller,
        on_delta: Callable[[ChatDelta], Awaitable[None]] | None = None,
        tool: str = "chat_complete",
        **sampling: object,
    ) -> Routed[ChatResult]:
        """A chat completion; with `on_delta` the upstream streams and each piece is passed on as it arrives."""
        card = self.resolve(requested, "chat", caller)
        delivered: list[str] = []  # text already passed to the client, across attempts
        asked = sampling.pop("max_tokens", None)
        max_tokens = asked if isinstance(asked, int) else None
        images = sum(len(m.images()) for m in messages)
        texts = [m.text() for m in messages]
        if tools := sampling.get("tools"):
            texts.append(json.dumps(tools))  # function definitions are prompt tokens too
        estimate = chat_estimate(card, texts, max_tokens, extra_prompt_tokens=images * card.image_input_tokens)
        allowance = AnswerAllowance(max_tokens, estimate.completion_tokens, estimate.prompt_tokens)

        effort = sampling.pop("reasoning_effort", None)

        async def call(route: Route) -> ChatResult:
            request = ChatRequest(
                upstream_model=route.card.upstream,
                messages=messages,
                max_tokens=allowance.max_tokens_for(route.card),
                reasoning_effort=effort if route.card.reasoning_effort else None,  # only where the card declares it
                **sampling,  # type: ignore[arg-type]
            )
            if on_delta is None:
                return await route.adapter.chat(request)
            return await _collect_stream(route.adapter, request, on_delta, delivered)

        try:
            routed = await self.run(card, call, tool=tool, caller=caller, estimate=estimate, allowance=allowance)
        except GatewayError as error:
            if delivered and not error.partial_text:  # e.g. the deadline cut the stream: keep what was sent
                raise error.with_context(partial_text="".join(delivered)) from None
            raise
        capped = allowance.capped(routed.card, routed.value)
        return replace(routed, budget_capped=capped) if capped else routed

    async def generate_image(
        self,
        card: ModelCard,
        *,
        caller: Caller,
        prompt: str,
        n: int = 1,
        size: str | None = None,
        images: list[InputFile] | None = None,
        mask: InputFile | None = None,
        idempotency_key: str | None = None,
    ) -> Routed[ImageResult]:
        """Images from an image model's card (the tool has validated n, size and the input images against it).
        Input images go inline (one, as base64) or to /images/edits (several, and a mask), as each model's
        `image_input` says; fallbacks that cannot take them are left out."""
        key = idempotency_key or new_idempotency_key()
        images = images or []
        fallbacks = [f for f in card.fallbacks if (c := self.catalog.get(f)) and takes_images(c, len(images), mask)]
        card = card.model_copy(update={"fallbacks": fallbacks}) if fallbacks != card.fallbacks else card

        async def call(route: Route) -> ImageResult:
            edits = route.card.image_input == "edits" and bool(images)
            request = ImageRequest(
                upstream_model=route.card.upstream,
                prompt=prompt,
                n=n,
                size=size,
                image_b64=None if edits or not images else base64.b64encode(images[0].data).decode("ascii"),
                response_format=route.card.response_format,
                images=images if edits else [],
                mask=mask if edits else None,
            )
            if edits:
                return await route.adapter.edit_image(request, idempotency_key=key)
            return await route.adapter.generate_image(request, idempotency_key=key)

        return await self.run(card, call, caller=caller, tool="generate_image", estimate=Quantities(images=n))

    async def submit_video(
        self,
        card: ModelCard,
        *,
        caller: Caller,
        prompt: str,
        image_b64: str | None = None,
        duration: float | None = None,
        aspect_ratio: str | None = None,
        idempotency_key: str | None = None,
        job_id: str | None = None,
    ) -> Routed[VideoStatus]:
        """Start a video task. Video jobs keep their key in the job record, so a resumed submission reuses it.
        The submission is what the ledger charges (duration x price); status polls are free and not recorded."""
        key = idempotency_key or new_idempotency_key()
        estimate = Quantities(video_seconds=duration) if duration else None  # None: the card's longest

        async def call(route: Route) -> VideoStatus:
            request = VideoRequest(
                upstream_model=route.card.upstream,
                prompt=prompt,
                image_b64=image_b64,
                duration=duration,
                aspect_ratio=aspect_ratio,
            )
            return await route.adapter.submit_video(request, idempotency_key=key)

        # A lost answer may mean a paid job exists upstream: never sent again (see docs/reliability.md).
        return await self.run(
            card, call, tool="generate_video", caller=caller, estimate=estimate, job_id=job_id, resend_if_lost=False
        )

    async def video_status(self, card: ModelCard, task_id: str, *, caller: Caller) -> Routed[VideoStatus]:
        """Poll a task on the provider that holds it: never a fallback, which would not know the task. Free: no
        budget, no ledger record."""
        pinned = card.model_copy(update={"fallbacks": []})

        async def call(route: Route) -> VideoStatus:
            return await route.adapter.video_status(task_id)

        return await self.run(pinned, call, caller=caller, metered=False)

    def adapter_for(self, card: ModelCard) -> ProviderAdapter:
        """The adapter of `card`'s provider, for calls that are not generations (downloads of its outputs)."""
        return self.route_for(card).adapter

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            await adapter.aclose()


async def _collect_stream(
    adapter: ProviderAdapter,
    request: ChatRequest,
    on_delta: Callable[[ChatDelta], Awaitable[None]],
    delivered: list[str],
) -> ChatResult:
    """Pass each piece on as it arrives. A failure after the first piece carries the text sent so far,
    which also tells the retry loop not to try again: the client has already seen part of an answer."""
    parts: list[str] = []
    fragments: list[ToolCallFragment] = []
    last = ChatDelta()
    chat_id: str | None = None
    try:
        async with aclosing(adapter.chat_stream(request)) as stream:
            async for delta in stream:
                chat_id = chat_id or delta.id
                if delta.text:
                    await on_delta(delta)  # counted as delivered once sent: a cut here must not claim it
                    parts.append(delta.text)
                    delivered.append(delta.text)
                fragments.extend(delta.tool_calls or ())
                if delta.finish_reason:
                    last.finish_reason = delta.finish_reason
                if delta.usage:
                    last.usage = delta.usage
    except GatewayError as error:
        if parts and not error.partial_text:
            raise error.with_context(partial_text="".join(parts)) from None
        raise
    result = ChatResult(
        id=chat_id or "chatcmpl-stream",
        content="".join(parts),
        finish_reason=last.finish_reason,
        upstream_model=request.upstream_model,
        tool_calls=assemble_tool_calls(fragments) if fragments else None,
    )
    if last.usage:
        result.usage = last.usage
    return result
