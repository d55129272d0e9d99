"""Helpers for the provider-fault tests: a second emulator as a backup provider, fallback configs, results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from tests.support import EMU_KEY_ENV


@pytest.fixture(scope="session")
def backup_emulator_server() -> Iterator[Emulator]:
    with Emulator(api_key="test-key", reply="from the backup") as emulator:
        yield emulator


@pytest.fixture
def backup(backup_emulator_server: Emulator) -> Iterator[Emulator]:
    """A second upstream on its own socket, with its own request log: the fallback provider."""
    backup_emulator_server.reset()
    yield backup_emulator_server
    backup_emulator_server.reset()


def with_backup(config: dict[str, Any], backup: Emulator, *, fallbacks: list[str] | None = None) -> dict[str, Any]:
    """gpt-5.5 on arkroute falls back to backup-5 on the `backup` provider (another emulator)."""
    config["providers"]["backup"] = {
        "protocol": "openai",
        "base_url": backup.openai_url,
        "api_key_env": EMU_KEY_ENV,
        "timeout_s": 10,
    }
    config["models"]["backup-5"] = {"provider": "backup", "upstream": "gpt-5.4", "kind": "chat"}
    config["models"]["gpt-5.5"]["fallbacks"] = fallbacks or ["backup-5"]
    return config


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content["error"]


def output_of(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def provider_health(client: Client) -> dict[str, dict[str, Any]]:
    """status://providers, keyed by provider name."""
    read = await client.read_resource("status://providers")
    data = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    return {item["provider"]: item for item in data["providers"]}
