"""Key lookups cached per process on PostgreSQL (store/postgres_keycache.py): a key created, changed or revoked
by another process (`genroute keys`, another replica) takes effect on a running one within a second, and no
cached answer is given while the change listener is down."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from mcp_server.store.base import ApiKeyRecord
from mcp_server.store.postgres import PostgresStore
from mcp_server.store.postgres_keycache import listener_name
from tests.store_backends import fresh_schema, needs_postgres, store_for
from tests.support import http_gateway, write_config
from tests.support_access import keys, new_key, post

pytestmark = [pytest.mark.postgres, needs_postgres]
WITHIN_S = 1.0


async def within(seconds: float, check: Callable[[], Awaitable[bool]]) -> float:
    """How long `check` took to hold; fails the test when it does not within `seconds`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await anyio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.anyio
async def test_another_process_changes_reach_a_running_store_within_a_second(tmp_path: Path) -> None:
    with fresh_schema() as url:
        settings: dict[str, Any] = {"data_dir": str(tmp_path), "database_url": url}
        serving, other = store_for(settings), store_for(settings)
        assert isinstance(serving, PostgresStore)
        await serving.open()
        await other.open()
        try:
            await other.create_key(ApiKeyRecord(id="k1", name="alice", key_hash="h1", rate_limit_per_min=5))
            found = await serving.find_key_by_hash("h1")
            assert found is not None and found.rate_limit_per_min == 5

            async def listening() -> bool:
                await serving.find_key_by_hash("h1")
                return serving.caching_keys

            await within(5.0, listening)
            await other.update_key("alice", {"rate_limit_per_min": 9})

            async def updated() -> bool:
                record = await serving.find_key_by_hash("h1")
                return record is not None and record.rate_limit_per_min == 9

            await within(WITHIN_S, updated)
            await other.revoke_key("alice")
            await within(WITHIN_S, lambda: _gone(serving, "h1"))
            assert await serving.find_key_by_hash("h2") is None  # an unknown hash, cached as such
            await other.create_key(ApiKeyRecord(id="k2", name="bob", key_hash="h2"))
            await within(WITHIN_S, lambda: _present(serving, "h2"))

            # the listener's connection dies: while it is down, nothing cached is answered
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    (listener_name(),),
                ).fetchall()
            assert killed == [(True,)]
            await other.revoke_key("bob")
            await within(WITHIN_S, lambda: _gone(serving, "h2"))
            await within(5.0, listening)  # and it listens again
        finally:
            await serving.close()
            await other.close()


async def _gone(store: PostgresStore, key_hash: str) -> bool:
    return await store.find_key_by_hash(key_hash) is None


async def _present(store: PostgresStore, key_hash: str) -> bool:
    return await store.find_key_by_hash(key_hash) is not None


def test_a_key_revoked_by_the_cli_is_refused_by_a_running_server_within_a_second(
    config_data: dict[str, Any], tmp_path: Path
) -> None:
    with fresh_schema() as url:
        config_data["server"]["database_url"] = url
        path = write_config(tmp_path / "genroute.toml", config_data)
        key = new_key(path, "alice")
        with http_gateway(path, auth=True) as gateway:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # answered from the cache once its listener is up
                assert post(gateway.mcp_url, key).status_code == 200
                time.sleep(0.05)
            assert keys(path, "revoke", "alice").returncode == 0
            revoked = time.monotonic()
            while (status := post(gateway.mcp_url, key).status_code) == 200:
                assert time.monotonic() - revoked < WITHIN_S, "still accepted a second after the revocation"
                time.sleep(0.02)
        assert status == 401
