"""Several keys for one provider (issue 18, item 2): calls spread over them, a refused key is set aside while the
others carry on, all keys refused is a cooling provider, and the ledger and status://providers name the key (its
variable, never its value). Real `genroute serve --http` processes against the emulator."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from mcp_server.config import parse_config
from tests.support import child_env, http_gateway, write_config

pytestmark = pytest.mark.anyio
KEYS = {"GR_KEY_A": "test-key", "GR_KEY_B": "second-key-b7", "GR_KEY_C": "third-key-c9"}


def keyed_config(config_data: dict[str, Any], tmp_path: Path, *envs: str) -> Path:
    config_data["providers"]["arkroute"]["api_key_env"] = list(envs)
    config_data["models"]["gpt-5.5"]["fallbacks"] = ["llama3-8b"]
    return write_config(tmp_path / "genroute.toml", config_data)


def ledger_keys(data_dir: Path) -> Counter[str | None]:
    with sqlite3.connect(data_dir / "genroute.db") as conn:
        return Counter(row[0] for row in conn.execute("SELECT api_key_env FROM usage_ledger"))


def sent_keys(emulator: Emulator) -> list[str]:
    values = {value: env for env, value in KEYS.items()}
    return [values.get(call.headers["authorization"].split()[-1], "?") for call in emulator.calls("chat")]


async def providers(session: Client) -> dict[str, Any]:
    status = json.loads((await session.read_resource("status://providers")).contents[0].text)
    return {p["provider"]: p for p in status["providers"]}


async def test_calls_spread_over_the_keys_least_in_flight_first(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Eight calls at once over two keys: four each (the key with fewer in flight takes the next), and the ledger
    says which key served each, by variable name."""
    path = keyed_config(config_data, tmp_path, "GR_KEY_A", "GR_KEY_B")
    emulator.other_keys = {KEYS["GR_KEY_B"]: None}
    emulator.latency_ms = 300
    with http_gateway(path, env=child_env(**KEYS)) as gateway:
        async with Client(gateway.mcp_url) as session:
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(session.call_tool, "chat_complete", {"prompt": "hi"})
            status = await providers(session)
    assert Counter(sent_keys(emulator)) == {"GR_KEY_A": 4, "GR_KEY_B": 4}
    assert ledger_keys(tmp_path / "data") == {"GR_KEY_A": 4, "GR_KEY_B": 4}
    assert {k["env"]: (k["state"], k["served"]) for k in status["arkroute"]["keys"]} == {
        "GR_KEY_A": ("ok", 4),
        "GR_KEY_B": ("ok", 4),
    }
    assert status["aki"]["keys"] is None  # one key: nothing to choose


async def test_a_refused_key_is_set_aside_while_the_others_carry_on(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """B answers 429, C 402: each is set aside on its first refusal and the call goes on with A at once, so the
    client never sees an error and the provider stays ok; status://providers shows which keys cool and why."""
    path = keyed_config(config_data, tmp_path, "GR_KEY_A", "GR_KEY_B", "GR_KEY_C")
    emulator.other_keys = {KEYS["GR_KEY_B"]: 429, KEYS["GR_KEY_C"]: 402}
    with http_gateway(path, env=child_env(**KEYS)) as gateway:
        async with Client(gateway.mcp_url) as session:
            answers = [await session.call_tool("chat_complete", {"prompt": "hi"}) for _ in range(5)]
            status = await providers(session)
    assert not any(answer.is_error for answer in answers)
    assert all("fallback_from" not in answer.structured_content for answer in answers)
    assert sent_keys(emulator) == ["GR_KEY_A", "GR_KEY_B", "GR_KEY_C", "GR_KEY_A", "GR_KEY_A", "GR_KEY_A", "GR_KEY_A"]
    assert ledger_keys(tmp_path / "data") == {"GR_KEY_A": 5}
    keys = {k["env"]: k for k in status["arkroute"]["keys"]}
    assert keys["GR_KEY_A"]["state"] == "ok" and status["arkroute"]["state"] == "ok"
    assert keys["GR_KEY_B"]["state"] == "cooling_down" and "HTTP 429" in keys["GR_KEY_B"]["cooldown_reason"]
    assert keys["GR_KEY_C"]["state"] == "cooling_down" and "HTTP 402" in keys["GR_KEY_C"]["cooldown_reason"]
    assert status["arkroute"]["failures_last_minute"] == 0  # a key's refusal is not the provider's failure


async def test_all_keys_refused_is_a_cooling_provider_and_no_key_leaks(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Both keys refused (and echoed back in the errors): the provider cools, the fallback answers this call and
    the next without trying the provider again, and no key's value reaches a result, the status or the log."""
    path = keyed_config(config_data, tmp_path, "GR_KEY_B", "GR_KEY_C")
    emulator.other_keys = {KEYS["GR_KEY_B"]: 401, KEYS["GR_KEY_C"]: 429}
    emulator.echo_secrets = True
    with http_gateway(path, env=child_env(**KEYS)) as gateway:
        async with Client(gateway.mcp_url) as session:
            first = await session.call_tool("chat_complete", {"prompt": "hi"})
            second = await session.call_tool("chat_complete", {"prompt": "hi"})
            status = await providers(session)
            text = json.dumps(status)
        log = gateway.stderr()
    assert first.structured_content["fallback_from"] == "gpt-5.5"
    assert first.structured_content["model"] == second.structured_content["model"] == "llama3-8b"
    assert len(emulator.calls("chat")) == 2  # one try per key, then the provider is skipped
    assert status["arkroute"]["state"] == "cooling_down"
    assert {k["state"] for k in status["arkroute"]["keys"]} == {"cooling_down"}
    for secret in (KEYS["GR_KEY_B"], KEYS["GR_KEY_C"]):
        assert secret not in text and secret not in log and secret not in json.dumps(first.structured_content)
    assert "GR_KEY_B" in text and "GR_KEY_C" in text


def test_api_key_env_takes_a_list_of_distinct_names() -> None:
    base = {"protocol": "openai", "base_url": "https://example.com/v1"}
    parsed = parse_config({"providers": {"p": {**base, "api_key_env": ["A", "B"]}}})
    assert parsed.providers["p"].key_envs() == ["A", "B"]
    for bad in ([], ["A", "A"], ["A", ""]):
        with pytest.raises(Exception, match="non-empty list of distinct names"):
            parse_config({"providers": {"p": {**base, "api_key_env": bad}}})
