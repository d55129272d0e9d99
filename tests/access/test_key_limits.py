"""Per-key limits (issue 18, item 1): each key's monthly budget, ceiling per call and model allowlist, set with
`genroute keys create|update`, held by real `genroute serve --http` processes and by racing stores, on SQLite and
PostgreSQL."""

from __future__ import annotations

import functools
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from emulator import Emulator
from mcp_server.store.base import UsageRecord
from mcp_server.store.usage import KeyBudget, month_of, utcnow
from tests.store_backends import store_for
from tests.support import genroute_argv, http_gateway, two_replicas, write_config
from tests.support_access import client, keys, new_key
from tests.support_media import IMAGE_MODEL, media_config

LONG_REPLY = " ".join(["word"] * 300)


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


def listing_row(config_path: Path, name: str) -> str:
    listing = keys(config_path, "list")
    assert listing.returncode == 0, listing.stderr
    return next(line for line in listing.stdout.splitlines() if line.startswith(name + " "))


def test_limits_are_set_listed_and_changed_by_the_cli(config_path: Path) -> None:
    new_key(config_path, "alice", "--monthly-usd", "5", "--max-usd-per-call", "0.5", "--models", "gpt-5.*, llama3-8b")
    row = listing_row(config_path, "alice")
    assert "$5.00" in row and "$0.5000" in row and "gpt-5.*,llama3-8b" in row and "$0.0000" in row

    changed = keys(config_path, "update", "alice", "--monthly-usd", "none", "--models", "all", "--rate-limit", "7")
    assert changed.returncode == 0, changed.stderr
    assert "every model" in changed.stdout and "7/min" in changed.stdout and "monthly" not in changed.stdout
    row = listing_row(config_path, "alice")
    assert " all " in row and "$0.5000" in row and "$5.00" not in row  # the ceiling per call was left alone

    typo = keys(config_path, "update", "alice", "--models", "gtp-5.5")
    assert typo.returncode == 0 and "matches no model" in typo.stderr and "gtp-5.5" in typo.stderr
    negative = keys(config_path, "update", "alice", "--monthly-usd", "-1")
    assert negative.returncode == 1 and "monthly_usd is an amount in USD, 0 or more" in negative.stderr
    words = subprocess.run(  # argparse's refusal exits the process: run the real command
        [*genroute_argv(), "--config", str(config_path), "keys", "create", "bob", "--max-usd-per-call", "lots"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert words.returncode == 2 and "an amount in USD like 5 or 0.25, or 'none'" in words.stderr
    nothing = keys(config_path, "update", "alice")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    missing = keys(config_path, "update", "carol", "--admin")
    assert missing.returncode == 1 and "No active key named 'carol'. Active keys: alice" in missing.stderr
    for result in (typo, negative, words, nothing, missing):
        assert "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_a_key_sees_and_reaches_only_its_models(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Outside its allowlist a model does not exist for a key: not listed, not readable, unknown when asked for
    (the error lists only its models), and never reached as a fallback. Another key sees everything."""
    config_data["models"]["gpt-5.5"]["fallbacks"] = ["llama3-8b"]
    path = write_config(tmp_path / "genroute.toml", config_data)
    narrow = new_key(path, "narrow", "--models", "gpt-5.*")
    wide = new_key(path, "wide")
    with http_gateway(path, auth=True) as gateway:
        async with client(gateway.mcp_url, narrow) as session:
            listed = (await session.call_tool("list_models", {})).structured_content["models"]
            catalog = json.loads((await session.read_resource("models://catalog")).contents[0].text)["models"]
            with pytest.raises(MCPError, match="Unknown model 'llama3-8b'"):
                await session.read_resource("models://llama3-8b")
            asked = error_of(await session.call_tool("chat_complete", {"prompt": "hi", "model": "llama3-8b"}))
            emulator.fail_next("chat", status=503, times=10)
            failed = error_of(await session.call_tool("chat_complete", {"prompt": "hi", "model": "default-chat"}))
        async with client(gateway.mcp_url, wide) as session:
            everything = (await session.call_tool("list_models", {})).structured_content["models"]
            emulator.fail_next("chat", status=503, times=10)
            answer = await session.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"})
    fell_back = answer.structured_content
    assert [m["id"] for m in listed] == [m["id"] for m in catalog] == ["gpt-5.5", "gpt-5.4"]
    assert asked["code"] == "model_not_found" and "llama3" not in asked["message"].replace("'llama3-8b'", "")
    assert "Available chat models: gpt-5.5, gpt-5.4." in asked["message"]
    assert failed["code"] == "service_unavailable" and "llama3-8b" not in failed["message"]
    assert [m["id"] for m in everything] == ["gpt-5.5", "gpt-5.4", "llama3-8b"]
    assert fell_back["fallback_from"] == "gpt-5.5" and fell_back["model"] == "llama3-8b"
    assert len(emulator.calls("aki")) == 1  # the wide key's fallback only


@pytest.mark.anyio
async def test_a_keys_budget_and_ceiling_hold_beside_the_global_one(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """$0.01 for one key at $0.003 an answer: three in full, one cut to what $0.001 buys, then refusals that name
    the key's budget, while another key goes on under the global budget. A key's ceiling per call cuts an answer
    and refuses an image. get_usage and `keys list` show each key's month."""
    config = media_config(config_data)
    config["models"]["flat"] = {"provider": "arkroute", "kind": "chat", "output_usd_per_mtok": 10.0}
    config["budget"] = {"monthly_usd": 1.0}
    config["server"].update(database_settings)
    path = write_config(tmp_path / "genroute.toml", config)
    thrifty = new_key(path, "thrifty", "--monthly-usd", "0.01")
    other = new_key(path, "other")
    capped = new_key(path, "capped", "--max-usd-per-call", "0.001")
    emulator.reply = LONG_REPLY
    ask = {"prompt": "go", "model": "flat", "max_tokens": 300}
    with http_gateway(path, auth=True) as gateway:
        async with client(gateway.mcp_url, thrifty) as session:
            answers = [await session.call_tool("chat_complete", ask) for _ in range(5)]
            own = (await session.call_tool("get_usage", {})).structured_content
        async with client(gateway.mcp_url, other) as session:
            unhindered = await session.call_tool("chat_complete", ask)
            others = (await session.call_tool("get_usage", {})).structured_content
        async with client(gateway.mcp_url, capped) as session:
            cut = (await session.call_tool("chat_complete", ask)).structured_content
            image = error_of(await session.call_tool("generate_image", {"prompt": "a cat", "model": IMAGE_MODEL}))
    tokens = [a.structured_content["usage"]["completion_tokens"] for a in answers if not a.is_error]
    assert tokens == [300, 300, 300, 100]
    refusal = error_of(answers[4])
    assert refusal["code"] == "budget_exceeded"
    assert "the monthly budget of key 'thrifty' would be exceeded. Limit $0.01" in refusal["message"]
    assert "genroute keys update thrifty --monthly-usd" in refusal["message"]
    assert own["key_budget"]["limit_usd"] == 0.01 and own["key_budget"]["spent_usd"] == pytest.approx(0.01)
    assert own["key_budget"]["remaining_usd"] == pytest.approx(0.0, abs=1e-9)
    assert not unhindered.is_error and others["key_budget"]["limit_usd"] is None
    assert others["key_budget"]["spent_usd"] == pytest.approx(0.003)
    assert others["budget"]["spent_usd"] == pytest.approx(0.013)  # the global budget counts every key
    assert cut["usage"]["completion_tokens"] == 100 and cut["budget_capped"]["limit"] == "key_max_usd_per_call"
    assert image["code"] == "budget_exceeded" and "max_usd_per_call of key 'capped', $0.001" in image["message"]
    assert "$0.0100" in listing_row(path, "thrifty") and "$0.0030" in listing_row(path, "other")


@pytest.mark.anyio
async def test_two_stores_racing_never_overspend_a_key_or_the_month(database_settings: dict[str, Any]) -> None:
    """Two stores on one database (two processes' worth of connections) race 40 reservations of $0.003: the key's
    $0.01 grants three, the global $1 is never the one that refuses; with the global limit lower than the key's,
    the global one refuses and says so. Settled records count towards the key's month."""
    first, second = store_for(database_settings), store_for(database_settings)
    await first.open()
    await second.open()
    month = month_of(utcnow())
    key = KeyBudget("key:abc", 0.01)
    granted: list[Any] = []
    try:

        async def reserve(store: Any, limit: float, budget: KeyBudget) -> None:
            reservation = await store.reserve_budget(month, limit, 0.003, key=budget)
            granted.append(reservation)

        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(reserve, first if n % 2 else second, 1.0, key)
        won = [r for r in granted if r.granted]
        assert len(won) == 3 and Counter(r.scope for r in granted if not r.granted) == {"key": 37}
        for n, reservation in enumerate(won):
            record = UsageRecord(tool="chat", model="flat", provider="p", upstream_model="u", cost_usd=0.003)
            record.caller = "key:abc"
            await (first if n % 2 else second).record_usage(record, reservation_id=reservation.id)
        mine = await first.budget_status(month, caller="key:abc")
        assert mine.spent_usd == pytest.approx(0.009) and mine.reserved_usd == 0.0
        assert (await second.budget_status(month)).spent_usd == pytest.approx(0.009)

        granted.clear()
        roomy = KeyBudget("key:def", 1.0)
        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(reserve, first if n % 2 else second, 0.015, roomy)
        assert Counter((r.granted, r.scope) for r in granted) == {(True, "global"): 2, (False, "global"): 8}
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_two_keys_on_two_replicas_each_keep_to_their_own_budget_and_models(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Two keys, $0.01 each, 12 racing 300-token answers at $0.003 per key through two servers on one database:
    each key gets three in full and one cut to the 100 tokens its last $0.001 buys, the rest refused naming that
    key; neither sees the other's models."""
    config_data["models"]["flat"] = {"provider": "arkroute", "kind": "chat", "output_usd_per_mtok": 10.0}
    config_data["models"]["level"] = {"provider": "arkroute", "upstream": "flat", "output_usd_per_mtok": 10.0}
    config_data["server"].update(database_settings)
    path = write_config(tmp_path / "genroute.toml", config_data)
    keys_by_name = {
        "red": (new_key(path, "red", "--monthly-usd", "0.01", "--models", "flat"), "flat"),
        "blue": (new_key(path, "blue", "--monthly-usd", "0.01", "--models", "level,gpt-5.4"), "level"),
    }
    emulator.reply = LONG_REPLY
    emulator.latency_ms = 300  # every call of the wave is in flight at once
    outcomes: dict[str, list[Any]] = {"red": [], "blue": []}
    seen: dict[str, list[str]] = {}
    first, second = two_replicas(path, auth=True)
    try:
        async with anyio.create_task_group() as starting:
            starting.start_soon(anyio.to_thread.run_sync, functools.partial(first.start, 90))
            starting.start_soon(anyio.to_thread.run_sync, functools.partial(second.start, 90))
        for name, (key, model) in keys_by_name.items():
            async with client(first.mcp_url, key) as one, client(second.mcp_url, key) as two:
                seen[name] = [m["id"] for m in (await one.call_tool("list_models", {})).structured_content["models"]]

                async def chat(session: Any, name: str = name, model: str = model) -> None:
                    result = await session.call_tool(
                        "chat_complete", {"prompt": "go", "model": model, "max_tokens": 300}
                    )
                    outcomes[name].append(error_of(result) if result.is_error else result.structured_content)

                with anyio.fail_after(120):
                    async with anyio.create_task_group() as group:
                        for n in range(12):
                            group.start_soon(chat, one if n % 2 else two)
    finally:
        first.stop()
        second.stop()
    assert seen == {"red": ["flat"], "blue": ["gpt-5.4", "level"]}
    for name, results in outcomes.items():
        answered = [r["usage"]["completion_tokens"] for r in results if "usage" in r]
        refused = [r for r in results if "usage" not in r]
        assert Counter(answered) == {300: 3, 100: 1}, name
        assert len(refused) == 8 and all(f"monthly budget of key '{name}'" in r["message"] for r in refused)
