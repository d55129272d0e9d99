"""GET /metrics: a running `genroute serve --http` scraped after real calls, parsed with prometheus_client's parser."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulator import Emulator
from emulator.chat import envelope
from mcp_server import __version__
from mcp_server.config import parse_config
from mcp_server.gateway import Gateway
from tests.support import http_gateway, write_config
from tests.support_access import TOOL_CALL, client, new_key, post

pytestmark = pytest.mark.anyio
MONTHLY_USD = 1.0


def scrape(url: str, token: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.get(url + "/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, from the exposition as Prometheus' own parser reads it."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return parsed.get((name, frozenset(labels.items())))


@pytest.fixture
def config(config_data: dict[str, Any]) -> dict[str, Any]:
    config_data["budget"] = {"monthly_usd": MONTHLY_USD}
    config_data["providers"]["arkvideo"] = dict(config_data["providers"]["arkroute"])  # its polls counted apart
    config_data["models"]["gpt-5.5"]["fallbacks"] = ["llama3-8b"]
    config_data["models"]["llama3-8b"].update(input_usd_per_mtok=0.1, output_usd_per_mtok=0.2)
    config_data["models"]["nano"] = {"provider": "arkroute", "upstream": "nano-banana-2", "kind": "image"}
    config_data["models"]["nano"]["usd_per_image"] = 2.0  # more than the whole budget: refused
    config_data["models"]["kling"] = {
        "provider": "arkvideo",
        "upstream": "kling-v2-master",
        "kind": "video",
        "durations": [5],
        "usd_per_second": 0.01,
    }
    config_data["media"] = {"video_poll_initial_s": 0.1, "video_poll_max_s": 0.2}
    return config_data


async def test_a_scrape_counts_calls_retries_refusals_spend_and_state(
    config: dict[str, Any], tmp_path: Path, emulator: Emulator
) -> None:
    config_path = write_config(tmp_path / "genroute.toml", config)
    admin, app = new_key(config_path, "ops", "--admin"), new_key(config_path, "app")
    limited = new_key(config_path, "tiny", "--rate-limit", "1")
    emulator.video_run_s = 0.2
    with http_gateway(config_path, auth=True) as gateway:
        async with client(gateway.mcp_url, app) as session:
            chat = {"prompt": "hello", "model": "gpt-5.5"}
            assert not (await session.call_tool("chat_complete", chat)).is_error  # ok
            emulator.fail_next("chat", status=503)
            assert not (await session.call_tool("chat_complete", chat)).is_error  # ok after one retry
            emulator.fail_next("chat", status=400, body=envelope(400, code="context_length_exceeded"))
            assert (await session.call_tool("chat_complete", chat)).is_error  # not retried
            refused = await session.call_tool("generate_image", {"prompt": "a cat", "model": "nano"})
            assert refused.structured_content["error"]["code"] == "budget_exceeded"
            video = await session.call_tool("generate_video", {"prompt": "waves", "model": "kling", "wait_s": 15})
            assert video.structured_content["status"] == "completed"
            # two 503s: a retry, then arkroute (4 failures of 5 calls in the minute) cools down and the fallback,
            # on another provider, answers
            emulator.fail_next("chat", status=503, times=2)
            fallback = await session.call_tool("chat_complete", chat)
            assert fallback.structured_content["model"] == "llama3-8b"
            with contextlib.suppress(Exception):  # the SDK's answer to an unknown tool
                await session.call_tool("no_such_tool", {})
            usage = (await session.call_tool("get_usage", {"group_by": "model"})).structured_content
            assert post(gateway.mcp_url, limited, body=TOOL_CALL).status_code != 429  # counted
            assert post(gateway.mcp_url, limited, body=TOOL_CALL).status_code == 429  # over the key's limit

            assert scrape(gateway.url).status_code == 401
            forbidden = scrape(gateway.url, app)
            assert forbidden.status_code == 403 and "admin" in forbidden.json()["error_description"]
            answer = scrape(gateway.url, admin)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    parsed = samples(answer.text)
    calls = "genroute_tool_calls_total"
    assert value(parsed, calls, tool="chat_complete", model="gpt-5.5", outcome="ok") == 3
    assert value(parsed, calls, tool="chat_complete", model="gpt-5.5", outcome="context_length_exceeded") == 1
    assert value(parsed, calls, tool="generate_image", model="nano", outcome="budget_exceeded") == 1
    assert value(parsed, calls, tool="generate_video", model="kling", outcome="ok") == 1
    assert value(parsed, calls, tool="get_usage", model="", outcome="ok") == 1
    assert value(parsed, calls, tool="unknown", model="", outcome="error") == 1
    assert value(parsed, "genroute_tool_duration_seconds_count", tool="chat_complete") == 4
    assert value(parsed, "genroute_tool_duration_seconds_bucket", tool="chat_complete", le="+Inf") == 4

    upstream = "genroute_upstream_requests_total"
    assert value(parsed, upstream, provider="arkroute", status="ok") == 2
    assert value(parsed, upstream, provider="arkroute", status="503") == 3
    assert value(parsed, upstream, provider="arkroute", status="400") == 1
    assert value(parsed, upstream, provider="aki", status="ok") == 1
    assert (value(parsed, upstream, provider="arkvideo", status="ok") or 0) >= 2  # the submission, then polls
    assert value(parsed, "genroute_upstream_duration_seconds_count", provider="arkroute") == 6
    assert value(parsed, "genroute_retries_total", provider="arkroute") == 2
    assert value(parsed, "genroute_fallbacks_total", model="gpt-5.5", fallback="llama3-8b") == 1
    assert value(parsed, "genroute_cooldowns_total", provider="arkroute") == 1
    assert value(parsed, "genroute_provider_cooling_down", provider="arkroute") == 1
    assert value(parsed, "genroute_provider_cooling_down", provider="aki") == 0

    spent = {model: row["cost_usd"] for model, row in usage["breakdown"].items()}
    for model in ("gpt-5.5", "llama3-8b", "kling"):
        assert value(parsed, "genroute_spend_usd_total", model=model) == pytest.approx(spent[model], abs=1e-6)
    assert value(parsed, "genroute_spend_usd_total", model="nano") is None  # refused: nothing spent
    remaining = value(parsed, "genroute_budget_remaining_usd", scope="global", key="")
    assert remaining == pytest.approx(usage["budget"]["remaining_usd"], abs=1e-6)
    assert value(parsed, "genroute_budget_limit_usd", scope="global", key="") == MONTHLY_USD

    assert value(parsed, "genroute_refusals_total", reason="budget_exceeded") == 1
    assert value(parsed, "genroute_refusals_total", reason="rate_limit") == 1
    assert value(parsed, "genroute_video_jobs", state="completed") == 1
    assert value(parsed, "genroute_video_jobs", state="running") == 0
    assert value(parsed, "genroute_open_sessions") == 1  # the client's session, still open while scraped
    assert not any(secret in answer.text for secret in (admin, app, limited, "hello", "test-key"))


async def test_public_metrics_need_no_key(config_data: dict[str, Any], tmp_path: Path, emulator: Emulator) -> None:
    config_data["metrics"] = {"public": True}
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    new_key(config_path, "someone")
    with http_gateway(config_path, auth=True) as gateway:
        answer = scrape(gateway.url)
        assert post(gateway.mcp_url).status_code == 401  # the rest still needs a key
    assert answer.status_code == 200
    parsed = samples(answer.text)
    assert value(parsed, "genroute_build_info", version=__version__) == 1
    assert value(parsed, "genroute_video_jobs", state="running") == 0
    assert not any(name == "genroute_budget_remaining_usd" for name, _ in parsed)  # no budget set


def test_gateways_in_one_process_keep_metrics_apart(config_data: dict[str, Any]) -> None:
    """A registry per gateway: two in one process (tests, embedders) neither clash nor share counts."""
    first, second = (Gateway.from_config(parse_config(config_data), metrics=True) for _ in range(2))
    first.observer.refused("rate_limit")
    for gateway, expected in ((first, 1.0), (second, None)):
        registry = gateway.observer.metrics.registry  # type: ignore[attr-defined]
        assert registry.get_sample_value("genroute_refusals_total", {"reason": "rate_limit"}) == expected
