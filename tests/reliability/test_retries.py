"""The retry rules, made to happen for real: the emulator misbehaves on a real socket, counts show the attempts.

Waits are kept short through config (tests/support.py sets backoff_base_s = 0.01), never by mocking time.
"""

from __future__ import annotations

import email.utils
import time
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from mcp_server.errors import GatewayError
from mcp_server.reliability.retry import RetryPolicy
from tests.faults_support import error_of, output_of
from tests.support import in_memory_client, stdio_client, write_config

pytestmark = pytest.mark.anyio
PROMPT = {"prompt": "hi", "model": "gpt-5.5"}


async def chat(config: dict[str, Any], arguments: dict[str, Any] = PROMPT) -> Any:
    async with in_memory_client(config) as client:
        return await client.call_tool("chat_complete", arguments)


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504, 520, 529])
async def test_retryable_status_is_retried_until_it_answers(
    config_data: dict[str, Any], emulator: Emulator, status: int
) -> None:
    emulator.fail_next("chat", status=status, times=2)
    out = output_of(await chat(config_data))
    assert out["content"] == "echo: hi" and out["model"] == "gpt-5.5" and "fallback_from" not in out
    assert len(emulator.calls("chat")) == 3  # the two failures, then the answer


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
async def test_refusals_are_never_retried(config_data: dict[str, Any], emulator: Emulator, status: int) -> None:
    # a plain 403 (permissions); the balance 403 goes to fallbacks: tests/reliability/test_fallbacks.py
    body = {"error": {"message": "Not allowed for this key", "type": "permission_error"}} if status == 403 else None
    emulator.fail_next("chat", status=status, body=body, times=3)
    error = error_of(await chat(config_data))
    assert error["status"] == status
    assert len(emulator.calls("chat")) == 1


async def test_retries_stop_at_max_retries_and_the_error_says_so(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    emulator.fail_next("chat", status=503, times=5)
    error = error_of(await chat(config_data))
    assert len(emulator.calls("chat")) == 3  # max_retries = 2 by default: one attempt and two retries
    assert error["status"] == 503 and error["code"] == "service_unavailable"
    assert "[3 attempts]" in error["message"] and "arkroute" in error["message"]
    assert [(a["model"], a["status"]) for a in error["attempts"]] == [("gpt-5.5", 503)] * 3


@pytest.mark.parametrize(
    ("routing", "provider", "expected"),
    [({"max_retries": 0}, {}, 1), ({"max_retries": 0}, {"max_retries": 1}, 2), ({"max_retries": 4}, {}, 5)],
)
async def test_max_retries_from_routing_table_and_provider_override(
    config_data: dict[str, Any], emulator: Emulator, routing: dict[str, Any], provider: dict[str, Any], expected: int
) -> None:
    config_data["routing"].update(routing)
    config_data["providers"]["arkroute"].update(provider)
    emulator.fail_next("chat", status=500, times=10)
    error_of(await chat(config_data))
    assert len(emulator.calls("chat")) == expected


async def test_retry_after_seconds_is_honoured(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", status=429, headers={"retry-after": "1"})
    emulator.fail_next("chat", status=503, times=2)
    error = error_of(await chat(config_data))
    waits = [a.get("waited_s") for a in error["attempts"]]
    assert waits[0] == 1.0 and waits[1] < 0.05 and waits[2] is None  # then the (test-sized) backoff
    first, second, _ = emulator.calls("chat")
    assert second.at - first.at >= 0.95  # the backoff alone would be 0.01 s


async def test_retry_after_ms_and_http_date_are_honoured(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", status=503, headers={"retry-after-ms": "700"})
    in_3_s = email.utils.formatdate(time.time() + 3, usegmt=True)
    emulator.fail_next("chat", status=503, headers={"retry-after": in_3_s})
    emulator.fail_next("chat", status=503, times=1)
    error = error_of(await chat(config_data))
    waits = [a.get("waited_s") for a in error["attempts"]]
    assert waits[0] == 0.7
    assert 1.0 <= waits[1] <= 3.0  # an HTTP date has one-second resolution
    first, second, third = emulator.calls("chat")
    assert second.at - first.at >= 0.65 and third.at - second.at >= 0.95


async def test_retry_after_above_the_cap_fails_at_once_and_says_how_long(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    emulator.fail_next("chat", status=429, headers={"retry-after": "600"}, times=3)
    error = error_of(await chat(config_data))
    assert len(emulator.calls("chat")) == 1
    assert error["status"] == 429 and error["retry_after_s"] == 600
    assert "asked to wait 600 s" in error["message"] and "retry_after_cap_s = 60 s" in error["message"]


async def test_retry_after_cap_is_configurable(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["routing"]["retry_after_cap_s"] = 0.5
    emulator.fail_next("chat", status=503, headers={"retry-after": "1"})
    error = error_of(await chat(config_data))
    assert len(emulator.calls("chat")) == 1 and "retry_after_cap_s = 0.5 s" in error["message"]


async def test_a_timeout_is_retried(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["providers"]["arkroute"]["timeout_s"] = 0.3
    emulator.fail_next("chat", status=200, latency_ms=2000)  # the normal answer, too late
    out = output_of(await chat(config_data))
    assert out["content"] == "echo: hi"
    assert len(emulator.calls("chat")) == 2


async def test_a_dropped_connection_is_retried(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", drop_connection=True)
    out = output_of(await chat(config_data))
    assert out["content"] == "echo: hi"
    assert len(emulator.calls("chat")) == 2  # one drop, one answer: the HTTP client adds no retries of its own


async def test_a_dropped_connection_with_no_retries_is_one_request(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    config_data["routing"]["max_retries"] = 0
    emulator.fail_next("chat", drop_connection=True)
    error = error_of(await chat(config_data))
    assert error["code"] == "upstream_unreachable"
    assert len(emulator.calls("chat")) == 1


async def test_an_unreachable_provider_is_retried_then_reported(config_data: dict[str, Any]) -> None:
    config_data["providers"]["arkroute"]["base_url"] = "http://127.0.0.1:9/v1"
    error = error_of(await chat(config_data))
    assert error["code"] == "upstream_unreachable"
    assert len(error["attempts"]) == 3 and "[3 attempts]" in error["message"]


async def test_malformed_json_is_a_clear_error_and_not_retried(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", malformed=True, times=3)
    error = error_of(await chat(config_data))
    assert error["code"] == "malformed_response" and "malformed" in error["message"]
    assert "arkroute" in error["message"]
    assert len(emulator.calls("chat")) == 1


async def test_the_deadline_ends_a_hanging_call(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["routing"]["deadline_s"] = 0.5
    emulator.fail_next("chat", status=200, latency_ms=5000)
    error = error_of(await chat(config_data))
    assert error["code"] == "deadline_exceeded" and error["status"] == 504
    assert "deadline_s = 0.5 s" in error["message"]
    assert len(emulator.calls("chat")) == 1


async def test_no_retry_is_started_that_the_deadline_would_cut(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["routing"]["deadline_s"] = 2
    emulator.fail_next("chat", status=503, headers={"retry-after": "5"}, times=3)
    error = error_of(await chat(config_data))
    assert error["status"] == 503 and "no time left for another retry within deadline_s" in error["message"]
    assert len(emulator.calls("chat")) == 1


async def test_retries_over_stdio_against_a_real_process(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """The key cases through `genroute serve` as a subprocess: a retried 503 and a 400 sent once."""
    path = write_config(tmp_path / "genroute.toml", config_data)
    async with stdio_client(path) as client:
        emulator.fail_next("chat", status=503, times=2)
        answered = output_of(await client.call_tool("chat_complete", PROMPT))
        retried = len(emulator.calls("chat"))
        emulator.fail_next("chat", status=400)
        refused = error_of(await client.call_tool("chat_complete", PROMPT))
    assert answered["content"] == "echo: hi" and retried == 3
    assert refused["status"] == 400 and len(emulator.calls("chat")) == retried + 1


def test_backoff_doubles_from_half_a_second_to_eight_with_up_to_a_quarter_of_jitter() -> None:
    policy = RetryPolicy()  # the production defaults: 0.5 s base, 8 s cap
    assert [policy.backoff_s(n, rand=lambda: 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert [policy.backoff_s(n, rand=lambda: 1.0) for n in range(6)] == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]
    refusal = GatewayError("x", status=429, retry_after_s=0)  # Retry-After: 0 means "no opinion": back off
    assert policy.wait_s(refusal, 1) <= 1.0 and policy.wait_s(GatewayError("x", retry_after_s=7), 0) == 7
