"""Fallbacks: after retries are used up, or on a 402 or a balance 403, the model's fallbacks answer in order.

The primary provider is the shared emulator; the fallback provider is a second emulator on its own socket,
so each side's request log counts exactly what it received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from mcp_server.config import parse_config
from mcp_server.errors import ConfigError
from tests.faults_support import backup, backup_emulator_server, error_of, output_of, with_backup
from tests.support import in_memory_client, stdio_client, write_config
from tests.support_media import IMAGE_MODEL, media_config

__all__ = ["backup", "backup_emulator_server"]  # fixtures
pytestmark = pytest.mark.anyio
PROMPT = {"prompt": "hi", "model": "gpt-5.5"}


async def chat(config: dict[str, Any], arguments: dict[str, Any] = PROMPT) -> Any:
    async with in_memory_client(config) as client:
        return await client.call_tool("chat_complete", arguments)


async def test_fallback_answers_after_retries_are_used_up(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    emulator.fail_next("chat", status=503, times=3)
    out = output_of(await chat(with_backup(config_data, backup)))
    assert out["content"] == "from the backup"
    assert out["model"] == "backup-5" and out["provider"] == "backup" and out["fallback_from"] == "gpt-5.5"
    assert len(emulator.calls("chat")) == 3 and len(backup.calls("chat")) == 1
    assert backup.calls("chat")[0].json["model"] == "gpt-5.4"  # the fallback card's upstream id


async def test_payment_required_goes_to_the_fallback_at_once(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    emulator.fail_next("chat", status=402, times=3)
    out = output_of(await chat(with_backup(config_data, backup)))
    assert out["provider"] == "backup" and out["fallback_from"] == "gpt-5.5"
    assert len(emulator.calls("chat")) == 1 and len(backup.calls("chat")) == 1


async def test_balance_403_goes_to_the_fallback_but_a_permission_403_does_not(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config = with_backup(config_data, backup)
    balance = {"error": {"message": "Insufficient balance", "type": "forbidden", "code": "forbidden"}}
    emulator.fail_next("chat", status=403, body=balance)  # ArcaneAPI's way of saying "top up"
    out = output_of(await chat(config))
    assert out["provider"] == "backup"
    assert len(emulator.calls("chat")) == 1 and len(backup.calls("chat")) == 1

    emulator.reset()
    backup.reset()
    emulator.fail_next("chat", status=403, body={"error": {"message": "This key may not use gpt-5.5"}})
    error = error_of(await chat(config))
    assert error["status"] == 403 and "permissions" in error["message"] and "balance" not in error["message"]
    assert len(emulator.calls("chat")) == 1 and backup.calls("chat") == []


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_refused_request_does_not_go_to_fallbacks(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator, status: int
) -> None:
    emulator.fail_next("chat", status=status)
    error = error_of(await chat(with_backup(config_data, backup)))
    assert error["status"] == status
    assert len(emulator.calls("chat")) == 1 and backup.calls("chat") == []


async def test_fallbacks_are_tried_in_order(config_data: dict[str, Any], emulator: Emulator, backup: Emulator) -> None:
    """gpt-5.5 -> gpt-5.4 (same provider, also out of credit) -> backup-5 answers."""
    config = with_backup(config_data, backup, fallbacks=["gpt-5.4", "backup-5"])
    emulator.fail_next("chat", status=402, times=2)
    out = output_of(await chat(config))
    assert out["model"] == "backup-5" and out["fallback_from"] == "gpt-5.5"
    assert [r.json["model"] for r in emulator.calls("chat")] == ["gpt-5.5", "gpt-5.4"]
    assert len(backup.calls("chat")) == 1


async def test_fallback_may_be_named_by_alias(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config = with_backup(config_data, backup)
    config["models"]["backup-5"]["aliases"] = ["spare"]
    config["models"]["gpt-5.5"]["fallbacks"] = ["spare"]
    emulator.fail_next("chat", status=402)
    assert output_of(await chat(config))["model"] == "backup-5"


async def test_when_every_route_fails_the_error_names_each(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    emulator.fail_next("chat", status=502, times=3)
    backup.fail_next("chat", status=503, times=3)
    error = error_of(await chat(with_backup(config_data, backup)))
    assert error["status"] == 502  # the model asked for comes first
    assert "Also tried: backup-5 (backup): HTTP 503" in error["message"] and "[6 attempts]" in error["message"]
    assert [(a["model"], a["status"]) for a in error["attempts"]] == [("gpt-5.5", 502)] * 3 + [("backup-5", 503)] * 3
    assert len(emulator.calls("chat")) == 3 and len(backup.calls("chat")) == 3


async def test_fallback_answers_when_the_primary_is_unreachable(config_data: dict[str, Any], backup: Emulator) -> None:
    config = with_backup(config_data, backup)
    config["providers"]["arkroute"]["base_url"] = "http://127.0.0.1:9/v1"
    out = output_of(await chat(config))
    assert out["provider"] == "backup" and out["fallback_from"] == "gpt-5.5"


def test_config_refuses_unknown_or_wrong_kind_fallbacks(config_data: dict[str, Any]) -> None:
    config_data["models"]["gpt-5.5"]["fallbacks"] = ["gpt-9"]
    with pytest.raises(ConfigError) as unknown:
        parse_config(config_data)
    assert unknown.value.key == "models.gpt-5.5.fallbacks" and unknown.value.problem == "unknown model 'gpt-9'"
    config_data["models"]["pic"] = {"provider": "arkroute", "kind": "image"}
    config_data["models"]["gpt-5.5"]["fallbacks"] = ["pic"]
    with pytest.raises(ConfigError) as kind:
        parse_config(config_data)
    assert "'pic' is an image model, not a chat model" in kind.value.problem


async def test_fallback_over_stdio_reports_the_answering_model(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "genroute.toml", with_backup(config_data, backup))
    emulator.fail_next("chat", status=529, times=3)
    async with stdio_client(path) as client:
        out = output_of(await client.call_tool("chat_complete", PROMPT))
    assert (out["model"], out["provider"], out["fallback_from"]) == ("backup-5", "backup", "gpt-5.5")
    assert len(emulator.calls("chat")) == 3 and len(backup.calls("chat")) == 1


async def test_an_image_fallback_is_reported_by_generate_image(
    config_data: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config = media_config(with_backup(config_data, backup))
    config["models"]["nano-b"] = {"provider": "backup", "upstream": "nano-banana-2", "kind": "image"}
    config["models"][IMAGE_MODEL]["fallbacks"] = ["nano-b"]
    emulator.fail_next("images", status=402)
    async with in_memory_client(config) as client:
        out = output_of(await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": IMAGE_MODEL}))
    assert (out["model"], out["provider"], out["fallback_from"]) == ("nano-b", "backup", IMAGE_MODEL)
    assert len(emulator.calls("images")) == 1 and len(backup.calls("images")) == 1
    assert emulator.idempotency_keys == backup.idempotency_keys  # one logical call, one key
