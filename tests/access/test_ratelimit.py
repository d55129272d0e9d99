"""Per-key rate limits: what they count (tool calls, over a real `genroute serve --http`), the sliding-window
arithmetic, and the limiter over a real SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx2
import pytest

from mcp_server.access.ratelimit import SharedWindowLimiter, retry_after
from mcp_server.store.sqlite import SQLiteStore
from tests.support import http_gateway
from tests.support_access import MCP_HEADERS, client, new_key

pytestmark = pytest.mark.anyio
LIMITED = "Rate limited: this key may make 5 tool calls a minute"


async def test_a_key_makes_its_tool_calls_however_it_holds_its_sessions(config_path: Path) -> None:
    """`--rate-limit 5` is 5 tool calls a minute: initialize, notifications, tools/list, the GET stream and DELETE
    do not count, so a client that opens a session per call (LangChain's and llama-index's default) gets the same
    5 calls as one that keeps a session. tools/call, resources/read and prompts/get all count."""
    steady = new_key(config_path, "steady", "--rate-limit", "5")
    hopper = new_key(config_path, "hopper", "--rate-limit", "5")
    with http_gateway(config_path, auth=True) as gateway:
        async with client(gateway.mcp_url, steady) as session:
            for _ in range(3):
                await session.list_tools()  # protocol traffic: free
                assert not (await session.call_tool("list_models", {})).is_error
            await session.read_resource("models://catalog")
            await session.get_prompt("blog-writer", {"topic": "tides", "audience": "sailors"})
            with pytest.raises(Exception, match=LIMITED):
                await session.call_tool("list_models", {})
        for _ in range(5):
            async with client(gateway.mcp_url, hopper) as session:  # initialize, GET stream, call, DELETE
                assert not (await session.call_tool("list_models", {})).is_error
        async with client(gateway.mcp_url, hopper) as session:  # the session itself still opens
            with pytest.raises(Exception, match=LIMITED):
                await session.call_tool("list_models", {})
        refused = httpx2.post(
            gateway.mcp_url,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {hopper}"},
            json={"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_models"}},
            timeout=10,
        )
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()
    assert error["id"] == 7 and error["error"]["data"] == {
        "error": "rate_limited",
        "retry_after_s": int(refused.headers["retry-after"]),
    }


def test_requests_within_the_sliding_window_estimate_pass() -> None:
    assert retry_after(current=10, previous=0, elapsed=5, limit=10) == 0.0
    # half of the previous minute (10) still counts 30 s into this one: 5 + 5 fits 10, 5 + 6 does not
    assert retry_after(current=5, previous=10, elapsed=30, limit=10) == 0.0
    assert retry_after(current=6, previous=10, elapsed=30, limit=10) > 0.0


def test_retry_after_is_when_one_more_request_fits() -> None:
    # 6 now + 10 * (1 - t/60) + 1 more <= 10 from t = 42 s: 12 s after 30 s
    assert retry_after(current=6, previous=10, elapsed=30, limit=10) == pytest.approx(12.0)
    # 11 this minute (one refused): the next minute, once 11 * (1 - t/60) + 1 <= 10, t = 120 / 11
    wait = retry_after(current=11, previous=0, elapsed=20, limit=10)
    assert wait == pytest.approx(40.0 + 120.0 / 11)
    for current, previous, elapsed in [(6, 10, 30), (11, 0, 20), (10, 3, 59.9), (50, 50, 0.0)]:
        wait = retry_after(current, previous, elapsed, 10)
        # waiting that long, one more request (no others) fits the estimate again
        later = elapsed + wait
        if later < 60:
            assert previous * (1 - later / 60) + current + 1 <= 10 + 1e-9
        else:
            assert current * (1 - (later - 60) / 60) + 1 <= 10 + 1e-9


async def test_the_shared_limiter_counts_in_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "genroute.db")
    await store.open()
    now = [1_800_000_010.0]  # 10 s into a minute
    limiter = SharedWindowLimiter(store, clock=lambda: now[0])
    other_replica = SharedWindowLimiter(store, clock=lambda: now[0])
    try:
        allowed = [await (limiter if n % 2 else other_replica).acquire("alice", 3) for n in range(3)]
        refused = await limiter.acquire("alice", 3)
        assert allowed == [0.0, 0.0, 0.0] and refused > 0
        assert await limiter.acquire("bob", 3) == 0.0  # another key has its own count
        now[0] += refused  # whoever waits Retry-After gets through
        assert await other_replica.acquire("alice", 3) == 0.0
    finally:
        await store.close()


async def test_the_limit_holds_per_process_while_the_store_cannot_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that fails (here its table is gone) must neither lock every client out nor lift the limit."""
    store = SQLiteStore(tmp_path / "genroute.db")
    await store.open()
    limiter = SharedWindowLimiter(store)
    try:
        with sqlite3.connect(tmp_path / "genroute.db") as other:
            other.execute("DROP TABLE rate_windows")
        waits = [await limiter.acquire("alice", 3) for _ in range(4)]
    finally:
        await store.close()
    assert waits[:3] == [0.0, 0.0, 0.0] and 0 < waits[3] <= 20.0  # the process's own bucket: 3 a minute
    warnings = [r for r in caplog.records if "counted in this process only" in r.getMessage()]
    assert len(warnings) == 1 and "rate_windows" in warnings[0].getMessage()
