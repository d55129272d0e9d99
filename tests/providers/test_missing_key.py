"""A provider whose key variable is unset: one warning at start, and a call routed to it fails before anything is
sent (`missing_api_key`, naming the variable) and goes to its fallbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from tests.faults_support import error_of, output_of
from tests.support import GatewayProcess, write_config

pytestmark = pytest.mark.anyio
UNSET = "GENROUTE_TEST_UNSET_KEY"


async def test_a_provider_without_its_key_is_never_called(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    providers, models = config_data["providers"], config_data["models"]
    providers["keyless"] = {**providers["arkroute"], "api_key_env": UNSET}
    models["gpt-5.5"] |= {"provider": "keyless", "fallbacks": ["llama3-8b"]}  # llama3-8b: AKI, key set
    models["lonely"] = {"provider": "keyless", "upstream": "gpt-5.4"}
    path = write_config(tmp_path / "genroute.toml", config_data)
    with GatewayProcess(path) as gateway:
        async with Client(gateway.mcp_url) as client:
            answered = output_of(await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"}))
            refused = error_of(await client.call_tool("chat_complete", {"prompt": "hi", "model": "lonely"}))
    assert (answered["model"], answered["fallback_from"]) == ("llama3-8b", "gpt-5.5")
    assert refused["code"] == "missing_api_key" and refused["status"] == 401
    assert refused["message"].startswith(
        f"Provider 'keyless' has no API key: the environment variable {UNSET} is not set where genroute runs, "
        "so nothing was sent to it."
    )
    assert emulator.calls("chat") == []  # the keyless provider shares the emulator: not one chat request
    assert len(emulator.calls("aki")) == 1
    warnings = [line for line in gateway.stderr().splitlines() if UNSET in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "provider keyless" in warnings[0]
