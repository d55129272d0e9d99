"""Cooldown: a provider failing half of its calls in the last minute (3 at least), or answering 401, is
skipped for cooldown_s while a fallback exists; status://providers and `genroute check` show it."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from mcp_server.reliability.health import ProviderHealth
from mcp_server.reliability.health_file import read_reports
from tests.faults_support import (
    backup,
    backup_emulator_server,
    error_of,
    output_of,
    provider_health,
    with_backup,
)
from tests.support import (
    child_env,
    genroute_argv,
    http_gateway,
    in_memory_client,
    two_replicas,
    write_config,
)

__all__ = ["backup", "backup_emulator_server"]  # fixtures
pytestmark = pytest.mark.anyio
PROMPT = {"prompt": "hi", "model": "gpt-5.5"}


async def ask(client: Client, model: str = "gpt-5.5") -> Any:
    return await client.call_tool("chat_complete", {"prompt": "hi", "model": model})


async def test_a_failing_provider_is_skipped_while_it_cools_down(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    async with in_memory_client(with_backup(config_data, backup)) as client:
        assert (await provider_health(client))["arkroute"]["state"] == "ok"
        emulator.fail_next("chat", status=500, times=3)
        first = output_of(await ask(client))  # 3 failed attempts: 3 of 3 calls failed -> cooldown
        health = await provider_health(client)
        second = output_of(await ask(client))
    assert first["provider"] == "backup" and second["provider"] == "backup"
    assert len(emulator.calls("chat")) == 3  # the second call never reached arkroute
    assert len(backup.calls("chat")) == 2
    arkroute = health["arkroute"]
    assert arkroute["state"] == "cooling_down" and arkroute["cooling_down_until"]
    assert (arkroute["calls_last_minute"], arkroute["failures_last_minute"], arkroute["failure_rate"]) == (3, 3, 1.0)
    assert arkroute["cooldown_reason"] == "at least half of its calls failed (3 of 3 in the minute before)"
    assert "answered HTTP 500" in arkroute["last_error"] and arkroute["last_error"].startswith("Provider 'arkroute'")
    assert health["backup"]["state"] == "ok" and health["backup"]["calls_last_minute"] == 1


async def test_the_error_says_when_a_cooling_provider_was_skipped(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=500, times=3)
        output_of(await ask(client))
        backup.fail_next("chat", status=400)
        error = error_of(await ask(client))
    assert error["status"] == 400 and "backup" in error["message"]
    assert "Skipped, its provider cooling down after recent failures: gpt-5.5 (arkroute)." in error["message"]
    assert error["attempts"][0] == {"model": "gpt-5.5", "provider": "arkroute", "skipped": "cooling_down"}


async def test_a_401_cools_the_provider_down_at_once(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=401)
        first = output_of(await ask(client))  # the gateway's key is bad: the fallback answers
        health = await provider_health(client)
        output_of(await ask(client))
    assert first["provider"] == "backup" and first["fallback_from"] == "gpt-5.5"
    assert len(emulator.calls("chat")) == 1  # one 401, never retried, then skipped
    assert health["arkroute"]["state"] == "cooling_down"
    assert "401" in health["arkroute"]["cooldown_reason"]


async def test_the_failure_rate_rule_is_half_of_the_calls_and_three_failures(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config_data["routing"]["max_retries"] = 0  # one attempt per call: the counts below are exact
    async with in_memory_client(with_backup(config_data, backup)) as client:
        for _ in range(4):
            output_of(await ask(client))  # 4 successes on arkroute
        emulator.fail_next("chat", status=503, times=3)
        for _ in range(3):
            assert output_of(await ask(client))["provider"] == "backup"
        below = (await provider_health(client))["arkroute"]  # 3 of 7 failed: under half
        emulator.fail_next("chat", status=503)
        assert output_of(await ask(client))["provider"] == "backup"
        at_half = (await provider_health(client))["arkroute"]  # 4 of 8: half -> cooldown
    assert (below["state"], below["failures_last_minute"], below["calls_last_minute"]) == ("degraded", 3, 7)
    assert (at_half["state"], at_half["failures_last_minute"], at_half["calls_last_minute"]) == ("cooling_down", 4, 8)
    assert len(emulator.calls("chat")) == 8


async def test_two_failures_alone_never_cool_a_provider_down(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config_data["routing"]["max_retries"] = 0
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=503, times=2)
        for _ in range(2):
            output_of(await ask(client))
        health = (await provider_health(client))["arkroute"]
        output_of(await ask(client))
    assert (health["state"], health["failure_rate"]) == ("degraded", 1.0)
    assert len(emulator.calls("chat")) == 3  # still tried: 2 failures are under the minimum of 3


async def test_a_cooling_provider_is_still_used_when_no_fallback_exists(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=500, times=3)
        output_of(await ask(client))  # arkroute now cools down
        plain = output_of(await ask(client, "gpt-5.4"))  # same provider, no fallbacks
    assert plain["provider"] == "arkroute" and plain["content"] == "echo: hi"
    assert len(emulator.calls("chat")) == 4


async def test_the_provider_is_tried_again_once_the_cooldown_ends(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config_data["providers"]["arkroute"]["cooldown_s"] = 1  # per-provider override of [routing] cooldown_s
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=401)
        output_of(await ask(client))
        assert (await provider_health(client))["arkroute"]["state"] == "cooling_down"
        for _ in range(100):  # the cooldown is 1 s; give up after 10
            if (await provider_health(client))["arkroute"]["state"] != "cooling_down":
                break
            await anyio.sleep(0.1)
        again = output_of(await ask(client))
    assert again["provider"] == "arkroute" and "fallback_from" not in again
    assert len(emulator.calls("chat")) == 2


async def test_refused_requests_do_not_count_against_the_provider(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    async with in_memory_client(with_backup(config_data, backup)) as client:
        emulator.fail_next("chat", status=400, times=4)
        for _ in range(4):
            error_of(await ask(client))
        health = (await provider_health(client))["arkroute"]
    assert health["state"] == "ok" and health["failures_last_minute"] == 0


async def reported(directory: Path, provider: str, *, calls: int) -> None:
    """Wait (bounded) until a running server's health report shows `calls` calls on `provider`."""
    for _ in range(50):
        for report in read_reports(directory):
            if any(p.provider == provider and p.calls_last_minute == calls for p in report.providers):
                return
        await anyio.sleep(0.1)
    raise AssertionError(f"no health report showed {calls} calls on {provider} within 5 s")


def check(path: Path) -> subprocess.CompletedProcess[str]:
    command = [*genroute_argv(), "--config", str(path), "check"]
    return subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=60)


async def test_status_resource_and_check_over_a_real_http_server(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator, tmp_path: Path
) -> None:
    """`genroute serve --http` as a process: status://providers, then `genroute check` beside it."""
    path = write_config(tmp_path / "genroute.toml", with_backup(config_data, backup))
    with http_gateway(path) as gateway:
        async with Client(gateway.mcp_url) as client:
            emulator.fail_next("chat", status=503, times=3)
            answered = output_of(await client.call_tool("chat_complete", PROMPT))
            health = await provider_health(client)
        await reported(tmp_path / "data" / "health", "backup", calls=1)  # the server writes within a second
        during = check(path)
    after = check(path)
    assert answered["provider"] == "backup"
    assert health["arkroute"]["state"] == "cooling_down" and health["arkroute"]["failures_last_minute"] == 3

    lines = during.stdout.splitlines()
    assert during.returncode == 0, during.stdout + during.stderr
    listed = "reachable, key not checked (GET /models listed 4 models, but answers a wrong key too (HTTP 200))"
    arkroute = lines.index(f"arkroute: {listed}; the first call will tell")
    assert lines[arkroute + 1].startswith("  health: cooling down until ")
    assert "3 of 3 calls failed in the last minute" in lines[arkroute + 1]
    assert "last error: Provider 'arkroute' answered HTTP 503" in lines[arkroute + 1]
    assert f"[server pid {gateway.process.pid}, as of " in lines[arkroute + 1]
    backup_line = lines[lines.index(f"backup: {listed}; the first call will tell") + 1]
    assert backup_line.startswith("  health: ok (0 of 1 calls failed in the last minute)")

    # the server has stopped (and removed its report): check says so instead of showing stale health
    assert "health: no running genroute server has recorded provider calls" in after.stdout
    assert "  health:" not in after.stdout


def test_check_ages_a_report_that_an_idle_server_wrote_long_ago() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    seen = ProviderHealth(
        provider="arkroute",
        state="cooling_down",
        calls_last_minute=3,
        failures_last_minute=3,
        failure_rate=1.0,
        cooling_down_until=now - timedelta(seconds=5),
        cooldown_reason="at least half of its calls failed (3 of 3 in the minute before)",
        last_error="Provider 'arkroute' answered HTTP 503: busy (service_unavailable)",
    )
    assert seen.aged(2, now - timedelta(seconds=10)) is seen  # fresh and still cooling: as written
    recent = seen.aged(20, now)  # cooldown over, failures still inside the minute
    assert recent.state == "degraded" and recent.failures_last_minute == 3 and recent.cooling_down_until is None
    old = seen.aged(90, now)  # everything it counted has left the window
    assert old.summary() == "ok (no calls in the last minute)" and old.last_error is None
    still = seen.model_copy(update={"cooling_down_until": now + timedelta(seconds=600)}).aged(90, now)
    assert still.state == "cooling_down" and still.summary().startswith("cooling down until 2026-01-01 12:10:00 UTC")


async def test_replicas_on_one_database_share_a_cooldown(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, backup: Emulator, tmp_path: Path
) -> None:
    """A provider that refused its key on one replica cools down on the others too: they go to the fallback
    without paying the failed call themselves."""
    config = with_backup(config_data, backup)
    config["server"].update(database_settings)
    first, second = two_replicas(write_config(tmp_path / "genroute.toml", config))
    with first, second:
        async with Client(first.mcp_url) as one, Client(second.mcp_url) as two:
            emulator.fail_next("chat", status=401)
            assert output_of(await ask(one))["provider"] == "backup"
            for _ in range(100):  # shared at once, read by the other replica every 2 s: 10 s at most
                seen = (await provider_health(two))["arkroute"]
                if seen["state"] == "cooling_down":
                    break
                await anyio.sleep(0.1)
            answer = output_of(await ask(two))
    assert answer["provider"] == "backup" and answer["fallback_from"] == "gpt-5.5"
    assert len(emulator.calls("chat")) == 1  # only the first replica's call reached the refusing provider
    assert seen["cooldown_reason"] == "the provider refused its API key (HTTP 401) (seen by another genroute process)"
