"""The ledger under load, under SIGKILL, and shared by two replicas charging one budget (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from mcp_server.store.base import UsageQuery
from mcp_server.store.usage import utcnow
from tests.store_backends import store_for
from tests.support import GatewayProcess, write_config

pytestmark = pytest.mark.anyio


def serving(config: dict[str, Any], settings: dict[str, Any], tmp_path: Path) -> Path:
    config["server"].update(settings)
    return write_config(tmp_path / "genroute.toml", config)


async def ledger_count(settings: dict[str, Any]) -> int:
    store = store_for(settings)
    await store.open()
    try:
        start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return (await store.usage_summary(UsageQuery(start=start, end=utcnow()))).totals.requests
    finally:
        await store.close()


async def test_200_concurrent_calls_make_exactly_200_records(
    config_data: dict[str, Any], database_settings: dict[str, Any], tmp_path: Path
) -> None:
    path = serving(config_data, database_settings, tmp_path)
    failures: list[Any] = []
    with GatewayProcess(path) as gateway:
        async with Client(gateway.mcp_url) as client:

            async def call(n: int) -> None:
                result = await client.call_tool("chat_complete", {"prompt": f"call {n}"})
                if result.is_error:
                    failures.append(result.content)

            with anyio.fail_after(120):
                async with anyio.create_task_group() as group:
                    for n in range(200):
                        group.start_soon(call, n)
            report = (await client.call_tool("get_usage", {"group_by": "caller"})).structured_content
    assert failures == []
    assert report["requests"] == 200 and report["errors"] == 0
    assert list(report["breakdown"]) == ["local"]  # HTTP with --no-auth: the machine's own user
    assert await ledger_count(database_settings) == 200


async def test_sigkill_under_load_loses_no_committed_record(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path, backend: str
) -> None:
    """Every call the client saw succeed was committed before its answer left; the killed database opens."""
    path = serving(config_data, database_settings, tmp_path)
    emulator.latency_ms = 20  # keep calls in flight when the kill lands
    acknowledged = 0
    acknowledged_at_kill: int | None = None
    workers = 8
    loaded = anyio.Event()
    gateway = GatewayProcess(path).start()
    try:
        async with Client(gateway.mcp_url) as client:

            async def worker() -> None:
                nonlocal acknowledged
                while True:
                    try:
                        result = await client.call_tool("chat_complete", {"prompt": "load"})
                    except Exception:  # the server is gone
                        return
                    if result.is_error:  # answered with an error after the kill (connection lost upstream)
                        return
                    acknowledged += 1
                    if acknowledged >= 40:
                        loaded.set()

            with anyio.fail_after(90):
                async with anyio.create_task_group() as group:
                    for _ in range(workers):
                        group.start_soon(worker)
                    await loaded.wait()
                    acknowledged_at_kill = acknowledged
                    gateway.kill()  # SIGKILL: no shutdown hook runs
    except Exception:
        pass  # closing a client whose server was killed may fail; what matters is below
    finally:
        gateway.kill()
    assert acknowledged_at_kill is not None and acknowledged_at_kill >= 40, "the load never built up"
    if backend == "sqlite":
        conn = sqlite3.connect(Path(database_settings["data_dir"]) / "genroute.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    recorded = await ledger_count(database_settings)
    assert acknowledged <= recorded <= acknowledged + workers
    with GatewayProcess(path) as restarted:  # the database opens and takes new records
        async with Client(restarted.mcp_url) as client:
            assert not (await client.call_tool("chat_complete", {"prompt": "after"})).is_error
            report = (await client.call_tool("get_usage", {})).structured_content
    assert report["requests"] == recorded + 1


async def test_two_replicas_charging_one_budget_never_overspend(
    config_data: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """40 calls at $0.001 each race through two servers for a $0.01 budget: exactly 10 may pass."""
    config_data["models"]["flat"] = {"provider": "arkroute", "kind": "chat", "output_usd_per_mtok": 10.0}
    config_data["budget"] = {"monthly_usd": 0.01}
    path = serving(config_data, database_settings, tmp_path)
    emulator.reply = " ".join(["word"] * 300)  # cut to max_tokens: every call costs exactly its estimate
    emulator.latency_ms = 300  # all 40 are in flight together
    outcomes: list[str] = []
    first, second = GatewayProcess(path), GatewayProcess(path)
    if second.port == first.port:
        second = GatewayProcess(path)
    try:
        async with anyio.create_task_group() as starting:  # start both replicas at once
            starting.start_soon(anyio.to_thread.run_sync, first.start)
            starting.start_soon(anyio.to_thread.run_sync, second.start)
        async with Client(first.mcp_url) as one, Client(second.mcp_url) as two:

            async def call(client: Client) -> None:
                result = await client.call_tool("chat_complete", {"prompt": "go", "model": "flat", "max_tokens": 100})
                outcomes.append(result.structured_content["error"]["code"] if result.is_error else "ok")

            with anyio.fail_after(120):
                async with anyio.create_task_group() as group:
                    for n in range(40):
                        group.start_soon(call, one if n % 2 else two)
            report = (await one.call_tool("get_usage", {})).structured_content
    finally:
        first.stop()
        second.stop()
    assert outcomes.count("ok") == 10
    assert outcomes.count("budget_exceeded") == 30
    assert len(emulator.calls("chat")) == 10
    assert report["cost_usd"] == pytest.approx(0.01) and report["cost_usd"] <= 0.01 + 1e-9
    assert report["budget"]["spent_usd"] == pytest.approx(0.01) and report["budget"]["reserved_usd"] == 0.0
    assert (report["requests"], report["errors"]) == (40, 30)
