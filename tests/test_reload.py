"""Config reload without a restart (issue 18, item 5): `genroute reload` (SIGHUP through the pid file in data_dir)
makes a running `genroute serve --http` or `genroute serve` (stdio) read its config again; clients are told the
lists changed, calls in flight finish on the config they began with, and an invalid config is refused."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from tests.support import child_env, genroute_argv, http_gateway, stdio_client, write_config
from tests.support_access import client as keyed_client

pytestmark = pytest.mark.anyio
CHANGED = {
    "notifications/tools/list_changed",
    "notifications/resources/list_changed",
    "notifications/prompts/list_changed",
}


class Notifications:
    """A message_handler that keeps the methods of the notifications a client receives."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, message: Any) -> None:
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if method:
            self.methods.append(method)

    async def wait_for(self, methods: set[str]) -> None:
        await until(lambda: methods <= set(self.methods))


async def until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait for something another process does (a log line, a file, a notification)."""
    with anyio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 - another process's doing: nothing to wait on but polling
            await anyio.sleep(0.05)


def reload(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*genroute_argv(), "--config", str(config_path), "reload"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )


async def model_ids(session: Client) -> list[str]:
    return [m["id"] for m in (await session.call_tool("list_models", {})).structured_content["models"]]


def edited(config: dict[str, Any]) -> dict[str, Any]:
    """A new model (with an alias), gpt-5.4 gone, and a new preset."""
    config["models"]["gpt-6"] = {"provider": "arkroute", "kind": "chat", "aliases": ["newest"]}
    del config["models"]["gpt-5.4"]
    config["presets"]["haiku"] = {"description": "A haiku", "template": "A haiku about {topic}"}
    return config


async def test_sighup_reloads_a_running_http_server(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Over HTTP (a 2025-11-25 session): a call in flight on gpt-5.4 finishes while the config that drops it is
    swapped in; the client is told; the new model answers, the removed one is unknown, the new preset is listed.
    Then a broken config is refused with one log line and the server keeps serving the last good one."""
    path = write_config(tmp_path / "genroute.toml", config_data)
    heard = Notifications()
    emulator.latency_ms = 1500
    with http_gateway(path) as gateway:
        run_dir = tmp_path / "data" / "run"
        pid_file = run_dir / f"genroute-{gateway.process.pid}.pid"
        assert pid_file.read_text().strip() == str(gateway.process.pid)
        assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600
        async with Client(gateway.mcp_url, mode="legacy", message_handler=heard) as session:
            assert await model_ids(session) == ["gpt-5.5", "gpt-5.4", "llama3-8b"]
            in_flight: dict[str, Any] = {}

            async def slow_call() -> None:
                result = await session.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.4"})
                in_flight["result"] = result

            async with anyio.create_task_group() as group:
                group.start_soon(slow_call)
                await anyio.sleep(0.5)  # the call is at the provider
                write_config(path, edited(config_data))
                signalled = reload(path)
                await heard.wait_for(CHANGED)
            emulator.latency_ms = 0
            after = await model_ids(session)
            newest = await session.call_tool("chat_complete", {"prompt": "hi", "model": "newest"})
            gone = await session.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.4"})
            prompts = [p.name for p in (await session.list_prompts()).prompts]

            path.write_text('[models."broken"]\nprovider = "arkroute"\nkind = "sculpture"\n', encoding="utf-8")
            checked = reload(path)  # `genroute reload` reads the config first, and says what is wrong with it
            assert checked.returncode == 2 and "sculpture" in checked.stderr
            os.kill(gateway.process.pid, signal.SIGHUP)  # the server is told anyway (an editor's save, a script)
            await until(lambda: "reload refused" in gateway.stderr())
            still = await model_ids(session)
        log = gateway.stderr()
    assert signalled.returncode == 0 and f"pid {gateway.process.pid}" in signalled.stdout
    assert not in_flight["result"].is_error and in_flight["result"].structured_content["model"] == "gpt-5.4"
    assert after == still == ["gpt-5.5", "llama3-8b", "gpt-6"]
    assert not newest.is_error and newest.structured_content["model"] == "gpt-6"
    assert gone.is_error and gone.structured_content["error"]["code"] == "model_not_found"
    assert sorted(prompts) == ["blog-writer", "haiku"]
    refused = [line for line in log.splitlines() if "reload refused" in line]
    assert len(refused) == 1 and "sculpture" in refused[0] and "Traceback" not in log
    assert not pid_file.exists()  # removed when the server stopped


async def test_sighup_reloads_a_stdio_server(config_data: dict[str, Any], tmp_path: Path) -> None:
    path = write_config(tmp_path / "genroute.toml", config_data)
    heard = Notifications()
    async with stdio_client(path, mode="legacy", message_handler=heard) as session:
        before = await model_ids(session)
        write_config(path, edited(config_data))
        await until(lambda: bool(list((tmp_path / "data" / "run").glob("genroute-*.pid"))))  # once it runs
        assert reload(path).returncode == 0
        await heard.wait_for(CHANGED)
        after = await model_ids(session)
        answer = await session.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-6"})
    assert before == ["gpt-5.5", "gpt-5.4", "llama3-8b"] and after == ["gpt-5.5", "llama3-8b", "gpt-6"]
    assert not answer.is_error


async def test_a_keys_allowlist_applies_to_models_a_reload_adds(config_data: dict[str, Any], tmp_path: Path) -> None:
    """A key limited to `gpt-*` sees a model added by a reload when it matches, and not otherwise."""
    from tests.support_access import new_key

    path = write_config(tmp_path / "genroute.toml", config_data)
    key = new_key(path, "narrow", "--models", "gpt-*")
    with http_gateway(path, auth=True) as gateway:
        config_data["models"]["gpt-6"] = {"provider": "arkroute", "kind": "chat"}
        config_data["models"]["mistral"] = {"provider": "arkroute", "kind": "chat"}
        write_config(path, config_data)
        heard = Notifications()
        async with keyed_client(gateway.mcp_url, key) as session:
            assert reload(path).returncode == 0
            await until(lambda: "config reloaded" in gateway.stderr())
            seen = await model_ids(session)
    assert seen == ["gpt-5.5", "gpt-5.4", "gpt-6"]
    assert heard.methods == [] or set(heard.methods) <= CHANGED


def test_reload_without_a_running_server_says_so(config_path: Path) -> None:
    result = reload(config_path)
    assert result.returncode == 1 and "no running genroute server found in" in result.stderr
    assert os.sep + "run" in result.stderr
