"""Budgets are hard caps: a chat answer is bounded to what the money left buys, models without a price are refused
under a budget, and two replicas sharing one budget never overspend it. Real `genroute serve` processes."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from tests.support import in_memory_client, stdio_client, two_replicas, write_config
from tests.support_media import IMAGE_MODEL, media_config

pytestmark = pytest.mark.anyio
LONG_REPLY = " ".join(["word"] * 300)  # the emulator cuts it to max_tokens words and says finish_reason "length"


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


def sent_max_tokens(emulator: Emulator) -> list[int | None]:
    return [call.json.get("max_tokens") for call in emulator.calls("chat")]


async def test_a_small_budget_answers_as_far_as_it_goes_instead_of_refusing(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """$0.05 left at $2,000 per million answer tokens buys 25 tokens: a three-word question is answered, cut there."""
    config_data["models"]["pricey"] = {"provider": "arkroute", "upstream": "gpt-5.5", "output_usd_per_mtok": 2000.0}
    config_data["budget"] = {"monthly_usd": 0.05}
    emulator.reply = LONG_REPLY
    pieces: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pieces.append(message or "")

    async with stdio_client(write_config(tmp_path / "genroute.toml", config_data)) as client:
        answered = await client.call_tool(
            "chat_complete", {"prompt": "what is love", "model": "pricey"}, progress_callback=on_progress
        )
        again = await client.call_tool("chat_complete", {"prompt": "and then", "model": "pricey"})
        report = (await client.call_tool("get_usage", {})).structured_content
    assert not answered.is_error, answered.content
    out = answered.structured_content
    assert out["finish_reason"] == "length" and out["usage"]["completion_tokens"] == 25
    assert out["budget_capped"]["max_tokens"] == 25 and out["budget_capped"]["limit"] == "monthly_usd"
    assert "$0.05" in out["budget_capped"]["reason"]
    text = answered.content[0].text
    assert text.startswith(" ".join(["word"] * 25)) and "answer cut at 25 tokens by the budget" in text
    assert "".join(pieces) == " ".join(["word"] * 25)  # streamed as it came
    assert sent_max_tokens(emulator) == [25]  # the cap went upstream; the second call never did
    error = error_of(again)
    assert error["code"] == "budget_exceeded" and "min_answer_tokens" in error["message"]
    assert report["cost_usd"] == pytest.approx(0.05) and report["cost_usd"] <= 0.05 + 1e-9
    assert report["budget"]["reserved_usd"] == 0.0


async def test_a_month_never_ends_above_its_budget_whatever_the_prompts(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """The issue's repro: $1 a month, $0.50 a call, prompts of 600 KB and 100 KB and answers that would echo them."""
    config_data["models"]["gpt-5.5"]["max_usd_per_call"] = 0.5
    config_data["budget"] = {"monthly_usd": 1}
    outcomes: list[str] = []
    async with stdio_client(write_config(tmp_path / "genroute.toml", config_data)) as client:
        huge = await client.call_tool("chat_complete", {"prompt": "a " * 300_000, "model": "gpt-5.5"})
        for _ in range(12):
            result = await client.call_tool("chat_complete", {"prompt": "a " * 50_000, "model": "gpt-5.5"})
            outcomes.append(error_of(result)["code"] if result.is_error else result.structured_content["finish_reason"])
            if result.is_error:
                break
            capped = result.structured_content["budget_capped"]
            assert capped["max_tokens"] == 4096 and capped["limit"] == "default_answer_tokens"
        report = (await client.call_tool("get_usage", {})).structured_content
    error = error_of(huge)  # its prompt alone may cost $0.75: refused before anything is sent
    assert "max_usd_per_call of $0.5" in error["message"] and "for its prompt" in error["message"]
    assert outcomes[-1] == "budget_exceeded" and set(outcomes[:-1]) == {"length"} and len(outcomes) > 5
    assert set(sent_max_tokens(emulator)) == {4096} and len(emulator.calls("chat")) == len(outcomes) - 1
    assert report["cost_usd"] <= 1.0 and report["budget"]["reserved_usd"] == 0.0


async def test_discovered_prices_are_imported_and_unpriced_models_refused_under_a_budget(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    config_data["providers"]["arkroute"]["discover"] = True
    config_data["models"]["gpt-5.4"]["free"] = True
    config_data["budget"] = {"monthly_usd": 1}
    emulator.known_models = {"gpt-5.5", "gpt-5.4", "gpt-4o-mini", "mystery-1"}  # mystery-1 lists no price
    async with stdio_client(write_config(tmp_path / "genroute.toml", config_data)) as client:
        listed = {card["id"]: card for card in (await client.call_tool("list_models", {})).structured_content["models"]}
        priced = await client.call_tool("chat_complete", {"prompt": "one two three", "model": "arkroute/gpt-4o-mini"})
        unpriced = await client.call_tool("chat_complete", {"prompt": "hi", "model": "arkroute/mystery-1"})
        configured = await client.call_tool("chat_complete", {"prompt": "hi", "model": "llama3-8b"})
        free = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.4"})
        report = (await client.call_tool("get_usage", {"group_by": "model"})).structured_content
    pricing = listed["arkroute/gpt-4o-mini"]["pricing"]
    assert (pricing["input_usd_per_mtok"], pricing["output_usd_per_mtok"]) == (0.15, 0.6)
    assert listed["arkroute/mystery-1"]["pricing"]["output_usd_per_mtok"] is None
    assert not priced.is_error, priced.content
    used = priced.structured_content["usage"]
    cost = used["prompt_tokens"] * 0.15e-6 + used["completion_tokens"] * 0.6e-6
    assert report["breakdown"]["arkroute/gpt-4o-mini"]["cost_usd"] == pytest.approx(cost) and cost > 0
    for refused, model in ((unpriced, "arkroute/mystery-1"), (configured, "llama3-8b")):
        error = error_of(refused)
        assert (error["code"], error["status"]) == ("price_unknown", 402)
        assert f"'{model}' has no price" in error["message"]
        assert "`input_usd_per_mtok` and `output_usd_per_mtok`" in error["message"]
        assert "free = true" in error["message"]
    assert not free.is_error, free.content
    assert [call.json["model"] for call in emulator.calls("chat")] == ["gpt-4o-mini", "gpt-5.4"]
    assert emulator.calls("aki") == []


async def test_a_fallback_answers_within_the_money_reserved_or_is_not_sent(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    """The reservation is priced on the model asked for: a dearer fallback gets the tokens that money buys there,
    an unpriced one is refused without blaming (cooling) its provider."""
    config_data["models"]["flat"] = {"provider": "arkroute", "output_usd_per_mtok": 10.0, "fallbacks": ["dear"]}
    config_data["models"]["dear"] = {"provider": "aki", "upstream": "llama3_8b_chat", "output_usd_per_mtok": 40.0}
    config_data["models"]["open"] = {"provider": "arkroute", "output_usd_per_mtok": 10.0, "fallbacks": ["llama3-8b"]}
    config_data["routing"]["max_retries"] = 0
    config_data["budget"] = {"monthly_usd": 1}
    emulator.reply = LONG_REPLY
    emulator.fail_next("chat", status=503, times=2)
    async with in_memory_client(config_data) as client:
        fell_back = await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 100})
        refused = await client.call_tool("chat_complete", {"prompt": "go", "model": "open", "max_tokens": 100})
        status = json.loads((await client.read_resource("status://providers")).contents[0].text)
    out = fell_back.structured_content
    assert (out["model"], out["fallback_from"], out["usage"]["completion_tokens"]) == ("dear", "flat", 25)
    assert out["budget_capped"]["max_tokens"] == 25  # $0.001 reserved buys 25 tokens at $40 per million
    assert [call.json["max_gen_tokens"] for call in emulator.calls("aki")] == [25]
    error = error_of(refused)
    assert "Also tried: llama3-8b (aki): price_unknown" in error["message"]
    assert len(emulator.calls("aki")) == 1  # the unpriced fallback was never sent
    aki = next(p for p in status["providers"] if p["provider"] == "aki")
    assert (aki["failures_last_minute"], aki["last_error"]) == (0, None)


async def test_two_replicas_share_the_last_cents_of_a_budget_without_overspending(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """$0.05 through two servers: 10 racing images at $0.02 (whole or refused), then 40 racing 300-token answers at
    $0.003: three in full, one cut to the 100 tokens the last $0.001 buys, the rest refused; never a cent over."""
    config = media_config(config_data)
    config["models"]["flat"] = {"provider": "arkroute", "kind": "chat", "output_usd_per_mtok": 10.0}
    config["budget"] = {"monthly_usd": 0.05}
    config["server"].update(database_settings)
    path = write_config(tmp_path / "genroute.toml", config)
    emulator.reply = LONG_REPLY
    emulator.latency_ms = 300  # every call of a wave is in flight at once
    images: list[str] = []
    answers: list[dict[str, Any] | str] = []
    first, second = two_replicas(path)
    try:
        async with anyio.create_task_group() as starting:  # both at once; a busy machine may take a while
            starting.start_soon(anyio.to_thread.run_sync, functools.partial(first.start, 90))
            starting.start_soon(anyio.to_thread.run_sync, functools.partial(second.start, 90))
        async with Client(first.mcp_url) as one, Client(second.mcp_url) as two:

            async def image(client: Client) -> None:
                result = await client.call_tool("generate_image", {"prompt": "a cat", "model": IMAGE_MODEL})
                images.append(error_of(result)["code"] if result.is_error else "ok")

            async def chat(client: Client) -> None:
                result = await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 300})
                answers.append(error_of(result)["code"] if result.is_error else result.structured_content)

            with anyio.fail_after(120):
                for wave, count in ((image, 10), (chat, 40)):
                    async with anyio.create_task_group() as group:
                        for n in range(count):
                            group.start_soon(wave, one if n % 2 else two)
            report = (await one.call_tool("get_usage", {})).structured_content
    finally:
        first.stop()
        second.stop()
    assert Counter(images) == {"ok": 2, "budget_exceeded": 8}
    answered = [a for a in answers if isinstance(a, dict)]
    assert Counter(a["usage"]["completion_tokens"] for a in answered) == {300: 3, 100: 1}
    assert [a["budget_capped"]["max_tokens"] for a in answered if a.get("budget_capped")] == [100]
    assert answers.count("budget_exceeded") == 36
    assert sorted(sent_max_tokens(emulator)) == [100, 300, 300, 300]
    assert report["cost_usd"] == pytest.approx(0.05) and report["cost_usd"] <= 0.05 + 1e-9
    assert report["budget"]["spent_usd"] == pytest.approx(0.05) and report["budget"]["reserved_usd"] == 0.0
