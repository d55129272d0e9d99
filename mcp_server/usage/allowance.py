"""How long a chat answer may be under a budget: the answer tokens that the money reserved for the call buys.

A chat call's cost is open-ended unless `max_tokens` bounds it, so when a budget applies (`[budget] monthly_usd`
or the model's `max_usd_per_call`) genroute always sends one: what the money left affords after the prompt at its
upper bound (usage/cost.py), never more than the caller asked for (without max_tokens: the default answer
length). The accountant reserves that money (`grant`); every attempt asks `max_tokens_for` its model (a fallback
with other prices gets what the same money buys there); the result says when the budget cut the answer short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from mcp_server.catalog import PRICE_FIELDS, ModelCard
from mcp_server.errors import BudgetRefused, PriceUnknown
from mcp_server.providers.base import ChatResult
from mcp_server.usage.cost import Quantities, usd

Limit = Literal["monthly_usd", "max_usd_per_call", "key_monthly_usd", "key_max_usd_per_call", "default_answer_tokens"]
_ROUNDING = 1e-6  # a token count that float division leaves at 24.9999999 is 25


class BudgetCap(BaseModel):
    """Tells the caller that a budget, not the model, ended the answer (finish_reason "length")."""

    max_tokens: int = Field(description="The max_tokens genroute sent upstream, which the answer reached")
    limit: Limit = Field(
        description="What set it: [budget] monthly_usd, the model's max_usd_per_call, the key's own monthly "
        "budget or ceiling per call, or the default answer length reserved under a budget when max_tokens is "
        "left out"
    )
    reason: str


@dataclass
class AnswerAllowance:
    """One chat call's answer length under a budget. Built by the router, granted by the accountant."""

    requested: int | None  # the caller's max_tokens
    ceiling: int  # the most the call may use: `requested`, else the default answer length
    prompt_tokens: int  # the prompt's upper bound
    min_tokens: int = 16  # [budget] min_answer_tokens: fewer affordable answer tokens are refused
    usd: float | None = None  # the money reserved for the call; None: no budget applies, nothing is capped
    limit: Limit = "monthly_usd"  # the setting that decided `usd`
    sent: dict[str, int | None] = field(default_factory=dict)  # model id -> the max_tokens its attempt sent

    def prompt_usd(self, card: ModelCard) -> float:
        return self.prompt_tokens * (card.pricing.input_usd_per_mtok or 0.0) / 1e6

    def token_usd(self, card: ModelCard) -> float:
        return (card.pricing.output_usd_per_mtok or 0.0) / 1e6

    def least(self) -> int:
        """Answer tokens a call must afford: min_answer_tokens, or fewer when the caller asked for fewer."""
        return min(self.min_tokens, self.ceiling)

    def want_usd(self, card: ModelCard) -> float:
        return self.prompt_usd(card) + self.ceiling * self.token_usd(card)

    def need_usd(self, card: ModelCard) -> float:
        return self.prompt_usd(card) + self.least() * self.token_usd(card)

    def affordable(self, card: ModelCard, money: float) -> int | None:
        """Answer tokens `money` buys on `card` after the prompt (up to the ceiling); None: no output price."""
        per_token = self.token_usd(card)
        if per_token <= 0:
            return None
        return min(self.ceiling, math.floor((money - self.prompt_usd(card)) / per_token + _ROUNDING))

    def grant(self, money: float, limit: Limit) -> None:
        self.usd, self.limit = money, limit

    def estimate(self, card: ModelCard) -> Quantities:
        """What the granted call may use: the prompt's upper bound and the answer tokens the money buys."""
        tokens = self.affordable(card, self.usd) if self.usd is not None else None
        answer = self.ceiling if tokens is None else tokens
        return Quantities(prompt_tokens=self.prompt_tokens, completion_tokens=answer)

    def max_tokens_for(self, card: ModelCard) -> int | None:
        """The max_tokens to send `card`: the caller's without a budget, else what the reservation buys there.
        A fallback that the reservation cannot pay for (no price, too expensive) is refused, not sent."""
        if self.usd is None or card.free:
            return self.requested
        if not card.priced:
            raise unpriced_error(card)  # refused here, never sent: the next fallback is tried
        tokens = self.affordable(card, self.usd)
        if tokens is None:  # the answer costs nothing: only the prompt must fit
            if self.prompt_usd(card) > self.usd + 1e-9:
                raise _fallback_refused(card, self)
            return self.requested
        if tokens < self.least():
            raise _fallback_refused(card, self)
        self.sent[card.id] = tokens
        return tokens

    def capped(self, card: ModelCard, result: ChatResult) -> BudgetCap | None:
        """Set when the answer ran to a max_tokens that genroute lowered (or added) for the budget."""
        sent = self.sent.get(card.id)
        if sent is None or (self.requested is not None and sent >= self.requested):
            return None
        if result.finish_reason != "length" and result.usage.completion_tokens < sent:
            return None
        if sent < self.ceiling:
            setting = {
                "monthly_usd": "[budget] monthly_usd",
                "key_monthly_usd": "this key's monthly budget",
                "key_max_usd_per_call": "this key's max_usd_per_call",
            }.get(self.limit, f"max_usd_per_call of '{card.id}'")
            reason = (
                f"the {usd(self.usd or 0.0)} that {setting} left for this call buys {sent} answer tokens on "
                f"'{card.id}' after the prompt"
            )
            return BudgetCap(max_tokens=sent, limit=self.limit, reason=reason)
        reason = (
            f"under a budget an answer without max_tokens is limited to {sent} tokens, the default length the "
            "budget reserves; pass max_tokens for a longer one"
        )
        return BudgetCap(max_tokens=sent, limit="default_answer_tokens", reason=reason)


def cap_note(cap: BudgetCap) -> str:
    """The line added to the answer's text, for clients that read only the text."""
    return f"[genroute: answer cut at {cap.max_tokens} tokens by the budget: {cap.reason}.]"


def unpriced_error(card: ModelCard) -> PriceUnknown:
    fields = " and ".join(f"`{name}`" for name in PRICE_FIELDS[card.kind])
    where = f'[models."{card.id}"]'
    if card.discovered:  # listed by its provider without a price: a table of its own gives it one
        where = f'a [models."{card.id}"] table (provider = "{card.provider}", upstream = "{card.upstream}")'
    return PriceUnknown(
        f"Refused: a budget applies, but '{card.id}' has no price, so its cost cannot be kept within it. Set "
        f"{fields} on {where} in the config, or `free = true` if it costs nothing."
    )


def needs_text(card: ModelCard, allowance: AnswerAllowance) -> str:
    """What the smallest acceptable answer to this prompt costs, itemised, for a refusal."""
    prompt = allowance.prompt_usd(card)
    return (
        f"needs at least {usd(allowance.need_usd(card))}: up to {usd(prompt)} for its prompt (at most "
        f"{allowance.prompt_tokens} tokens, counted as UTF-8 bytes) and {usd(allowance.need_usd(card) - prompt)} "
        f"for {allowance.least()} answer tokens ([budget] min_answer_tokens)"
    )


def _fallback_refused(card: ModelCard, allowance: AnswerAllowance) -> BudgetRefused:
    return BudgetRefused(
        f"Refused: fallback '{card.id}' {needs_text(card, allowance)}, more than the "
        f"{usd(allowance.usd or 0.0)} reserved for this call."
    )
