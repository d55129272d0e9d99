"""get_usage, budgets and `genroute usage` through the real server: every call is in the ledger at its cost."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.support import child_env, free_port, genroute_argv, in_memory_client, ledger, write_config

pytestmark = pytest.mark.anyio
LONG_REPLY = " ".join(["word"] * 300)  # the emulator cuts it to max_tokens words: completion == max_tokens


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


@pytest.fixture
def priced(config_data: dict[str, Any]) -> dict[str, Any]:
    """The base config plus "flat": output tokens only, $10 per million, so estimate == cost for long answers."""
    config_data["models"]["flat"] = {"provider": "arkroute", "kind": "chat", "output_usd_per_mtok": 10.0}
    return config_data


async def test_a_call_is_recorded_with_tokens_cost_and_caller(config_data: dict[str, Any]) -> None:
    async with in_memory_client(config_data) as client:
        chat = await client.call_tool("chat_complete", {"prompt": "hello there world", "model": "default-chat"})
        report = (await client.call_tool("get_usage", {})).structured_content
        by_day = (await client.call_tool("get_usage", {"group_by": "day"})).structured_content
        by_provider = (await client.call_tool("get_usage", {"group_by": "provider"})).structured_content
        by_caller = (await client.call_tool("get_usage", {"group_by": "caller"})).structured_content
    used = chat.structured_content["usage"]
    cost = used["prompt_tokens"] * 1.25 / 1e6 + used["completion_tokens"] * 10.0 / 1e6
    today = datetime.now(UTC).date()
    assert report["period"] == {"start": today.replace(day=1).isoformat(), "end": today.isoformat()}
    assert (report["requests"], report["errors"]) == (1, 0)
    assert report["prompt_tokens"] == used["prompt_tokens"] and report["completion_tokens"] == used["completion_tokens"]
    assert report["tokens_used"] == used["total_tokens"]
    assert report["cost_usd"] == pytest.approx(cost)
    assert list(report["breakdown"]) == ["gpt-5.5"]  # the alias is recorded under the catalog id
    assert report["breakdown"]["gpt-5.5"]["cost_usd"] == pytest.approx(cost)
    assert report["budget"]["limit_usd"] is None and report["budget"]["spent_usd"] == pytest.approx(cost)
    assert list(by_day["breakdown"]) == [today.isoformat()]
    assert list(by_provider["breakdown"]) == ["arkroute"]
    assert list(by_caller["breakdown"]) == ["stdio"]
    (row,) = ledger(config_data)
    assert (row["tool"], row["model"], row["provider"], row["upstream_model"], row["outcome"]) == (
        "chat_complete",
        "gpt-5.5",
        "arkroute",
        "gpt-5.5",
        "ok",
    )
    assert row["latency_ms"] > 0


async def test_filters_by_model_and_caller(config_data: dict[str, Any]) -> None:
    async with in_memory_client(config_data) as client:
        await client.call_tool("chat_complete", {"prompt": "one", "model": "gpt-5.5"})
        await client.call_tool("chat_complete", {"prompt": "two", "model": "gpt-5.4"})
        only = (await client.call_tool("get_usage", {"model": "default-chat"})).structured_content
        nobody = (await client.call_tool("get_usage", {"caller": "alice"})).structured_content
    assert only["requests"] == 1 and list(only["breakdown"]) == ["gpt-5.5"] and only["model"] == "gpt-5.5"
    assert nobody["requests"] == 0 and nobody["breakdown"] == {}


async def test_a_failed_call_is_recorded_at_no_cost_with_its_code(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    body = {"error": {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}
    emulator.fail_next("chat", status=400, body=body)
    async with in_memory_client(config_data) as client:
        error_of(await client.call_tool("chat_complete", {"prompt": "hi"}))
        report = (await client.call_tool("get_usage", {})).structured_content
    assert (report["requests"], report["errors"], report["cost_usd"]) == (1, 1, 0.0)
    assert [row["outcome"] for row in ledger(config_data)] == ["context_length_exceeded"]


async def test_monthly_budget_refuses_the_call_that_would_pass_it(priced: dict[str, Any], emulator: Emulator) -> None:
    priced["budget"] = {"monthly_usd": 0.00211}  # after two calls, $0.00011 buys 11 tokens: under min_answer_tokens
    emulator.reply = LONG_REPLY
    call = {"prompt": "go", "model": "flat", "max_tokens": 100}  # estimate and cost: 100 x $10/M = $0.001
    async with in_memory_client(priced) as client:
        first = await client.call_tool("chat_complete", call)
        second = await client.call_tool("chat_complete", call)
        third = await client.call_tool("chat_complete", call)
        report = (await client.call_tool("get_usage", {})).structured_content
    assert not first.is_error and not second.is_error
    error = error_of(third)
    assert (error["status"], error["code"], error["type"]) == (402, "budget_exceeded", "insufficient_quota")
    month = datetime.now(UTC).strftime("%Y-%m")
    needs = ("needs at least $0.00016", "16 answer tokens")
    for figure in ("Limit $0.00211", f"spent in {month} $0.002", *needs, "'flat'"):
        assert figure in error["message"]
    assert len(emulator.calls("chat")) == 2  # the refused call never reached the provider
    assert (report["requests"], report["errors"]) == (3, 1)  # the refusal is in the ledger too
    assert report["cost_usd"] == pytest.approx(0.002)
    assert report["budget"] == {
        "month": month,
        "limit_usd": 0.00211,
        "spent_usd": pytest.approx(0.002),
        "reserved_usd": 0.0,
        "remaining_usd": pytest.approx(0.00011),
    }
    assert ledger(priced)[-1]["outcome"] == "budget_exceeded"


async def test_max_usd_per_call_caps_the_answer_and_refuses_only_a_stub(
    priced: dict[str, Any], emulator: Emulator
) -> None:
    priced["models"]["flat"]["max_usd_per_call"] = 0.0005  # 50 answer tokens
    priced["models"]["stingy"] = {**priced["models"]["flat"], "max_usd_per_call": 0.0001}  # 10: under 16
    emulator.reply = LONG_REPLY
    async with in_memory_client(priced) as client:
        big = await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 100})
        small = await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 10})
        stub = await client.call_tool("chat_complete", {"prompt": "go", "model": "stingy"})
    assert big.structured_content["budget_capped"]["max_tokens"] == 50
    assert big.structured_content["budget_capped"]["limit"] == "max_usd_per_call"
    assert "budget_capped" not in small.structured_content  # the caller's own max_tokens stopped it
    assert [call.json["max_tokens"] for call in emulator.calls("chat")] == [50, 10]
    error = error_of(stub)
    assert error["code"] == "budget_exceeded" and error["status"] == 402
    assert "max_usd_per_call of $0.0001" in error["message"] and "needs at least $0.00016" in error["message"]


async def test_free_calls_pass_a_spent_budget_and_unpriced_ones_do_not(config_data: dict[str, Any]) -> None:
    config_data["budget"] = {"monthly_usd": 0}
    config_data["models"]["gpt-5.4"]["free"] = True
    async with in_memory_client(config_data) as client:
        free = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.4"})
        paid = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"})
        unpriced = await client.call_tool("chat_complete", {"prompt": "hi", "model": "llama3-8b"})
    assert not free.is_error
    assert error_of(paid)["code"] == "budget_exceeded"
    assert error_of(unpriced)["code"] == "price_unknown"


@pytest.mark.parametrize(
    ("arguments", "param", "says"),
    [
        ({"start_date": "last tuesday"}, "start_date", "ISO 8601"),
        ({"end_date": "2024-13-01"}, "end_date", "ISO 8601"),
        ({"start_date": "2024-02-01", "end_date": "2024-01-31"}, "end_date", "before start_date"),
        ({"start_date": "2024-02-01T10:00:00Z", "end_date": "2024-02-01T09:00:00Z"}, "end_date", "before"),
    ],
)
async def test_bad_dates_are_refused_clearly(
    config_data: dict[str, Any], arguments: dict[str, Any], param: str, says: str
) -> None:
    async with in_memory_client(config_data) as client:
        error = error_of(await client.call_tool("get_usage", arguments))
    assert error["param"] == param and says in error["message"] and error["status"] == 400


async def test_dates_cover_whole_days_and_filter_the_period(config_data: dict[str, Any]) -> None:
    today = datetime.now(UTC).date().isoformat()
    async with in_memory_client(config_data) as client:
        await client.call_tool("chat_complete", {"prompt": "hi"})
        same_day = (await client.call_tool("get_usage", {"start_date": today, "end_date": today})).structured_content
        earlier = await client.call_tool("get_usage", {"start_date": "2024-01-01", "end_date": "2024-01-31"})
    assert same_day["requests"] == 1 and same_day["period"] == {"start": today, "end": today}
    assert earlier.structured_content["requests"] == 0
    assert earlier.structured_content["period"] == {"start": "2024-01-01", "end": "2024-01-31"}


async def test_provider_source_adds_the_providers_own_figures(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config_data) as client:
        chat = await client.call_tool("chat_complete", {"prompt": "count these words"})
        report = (await client.call_tool("get_usage", {"source": "provider"})).structured_content
    today = datetime.now(UTC).date()
    arka = report["provider"]["arkroute"]["usage"]
    assert arka["tokens_used"] == chat.structured_content["usage"]["total_tokens"]
    assert arka["breakdown_by_model"] == {"gpt-5.5": arka["tokens_used"]}
    assert arka["period"] == {"start": today.replace(day=1).isoformat(), "end": today.isoformat()}
    (asked,) = emulator.calls("usage")
    assert asked.query == {"start_date": today.replace(day=1).isoformat(), "end_date": today.isoformat()}
    assert report["provider"]["aki"]["error"]["code"] == "unsupported_operation"
    assert report["requests"] == 1  # the local figures stay beside them


async def test_provider_failure_is_reported_beside_the_local_figures(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    emulator.fail_next("usage", status=503, body={"error": {"message": "down", "type": "server_error"}})
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("get_usage", {"source": "provider", "model": "gpt-5.5"})
    assert not result.is_error
    assert set(result.structured_content["provider"]) == {"arkroute"}  # only the model's provider
    assert result.structured_content["provider"]["arkroute"]["error"]["status"] == 503


def run_usage(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*genroute_argv(), "--config", str(config_path), "usage", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )


async def test_genroute_usage_prints_the_same_figures(
    priced: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    priced["budget"] = {"monthly_usd": 5}
    emulator.reply = LONG_REPLY
    async with in_memory_client(priced) as client:
        await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 100})
        await client.call_tool("chat_complete", {"prompt": "go", "model": "gpt-5.4", "max_tokens": 5})
        tool = (await client.call_tool("get_usage", {"group_by": "provider"})).structured_content
    path = write_config(tmp_path / "genroute.toml", priced)
    as_json = run_usage(path, "--group-by", "provider", "--json")
    table = run_usage(path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {k: v for k, v in tool.items() if v is not None}
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    flat = next(line for line in lines if line.startswith("flat "))
    assert flat.split()[1:3] == ["1", "0"] and flat.split()[-1] == "0.001000"
    assert any(line.startswith("TOTAL") and line.split()[1] == "2" for line in lines)
    assert any("spent of $5, $4.999" in line for line in lines)


def test_genroute_usage_rejects_a_bad_date(config_path: Path) -> None:
    result = run_usage(config_path, "--start", "soon")
    assert result.returncode == 2
    assert "start_date" in result.stderr and "ISO 8601" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["serve"], ["serve", "--http"], ["usage"]])
def test_unreachable_database_is_one_clear_line_without_the_password(
    config_data: dict[str, Any], tmp_path: Path, command: list[str]
) -> None:
    if "--http" in command:  # a port of its own: serve --http binds it before it opens the database (port 9 here)
        command = [*command, "--port", str(free_port())]
    config_data["server"]["database_url"] = "postgresql://genroute:hunter2secret@127.0.0.1:9/genroute"
    path = write_config(tmp_path / "genroute.toml", config_data)
    result = subprocess.run(
        [*genroute_argv(), "--config", str(path), *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "postgresql://genroute@127.0.0.1:9/genroute" in result.stderr and "Connection refused" in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_database_url_must_be_postgresql(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_data["server"]["database_url"] = "mysql://root:pw@db/genroute"
    result = run_usage(write_config(tmp_path / "genroute.toml", config_data))
    assert result.returncode == 2 and "server.database_url" in result.stderr and "postgresql://" in result.stderr
    assert "pw@db" not in result.stderr
