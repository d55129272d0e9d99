"""How `serve --http` answers a call that takes long (mcp_server/http_answers.py): JSON while it is quick, an SSE
stream with pings once it runs past `[http] keepalive_s`, and a cancelled call when its client goes away."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from emulator import Emulator
from tests.support import INITIALIZE, INITIALIZED, MODERN, MODERN_META, http_gateway, ledger, write_config

pytestmark = pytest.mark.anyio

HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": MODERN,
    "mcp-method": "tools/call",
    "mcp-name": "chat_complete",
}


def chat_call(request_id: int, prompt: str) -> dict[str, Any]:
    params = {"name": "chat_complete", "arguments": {"prompt": prompt}, "_meta": MODERN_META}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def test_a_long_call_is_answered_on_a_pinged_sse_stream(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """A quick call gets one JSON body; one still running after keepalive_s gets an SSE stream that is pinged
    every keepalive_s (a proxy's idle timeout does not cut it) and ends with the answer as its one event. The
    SDK's own client reads that stream as it reads the SDK's."""
    config_data.setdefault("http", {})["keepalive_s"] = 0.5
    with http_gateway(write_config(tmp_path / "genroute.toml", config_data)) as gateway:
        with httpx2.Client(timeout=30) as http:
            # a fresh server's first call pays for its first provider connection; on a loaded CI machine that took
            # longer than keepalive_s, so the call that must be quick is the second
            http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(4, "warm up"))
            quick = http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(1, "quick"))
            json_only = http.post(
                gateway.mcp_url, headers={**HEADERS, "accept": "application/json"}, json=chat_call(3, "x")
            )
            emulator.latency_ms = 2000
            slow = http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(2, "slow"))
            slow_in_session = session_call(http, gateway.mcp_url, "slow too")
            emulator.latency_ms = 0
        async with Client(gateway.mcp_url) as client:
            through_sdk = await client.call_tool("chat_complete", {"prompt": "sdk"})
        assert "Traceback" not in gateway.stderr()
    assert quick.headers["content-type"] == "application/json"
    assert quick.json()["result"]["structuredContent"]["content"] == "echo: quick"
    assert json_only.status_code == 406  # the Accept rule is the SDK's, as before: both types
    assert slow.status_code == 200 and slow.headers["content-type"].startswith("text/event-stream")
    assert slow.text.count(": ping") >= 3  # 2 s at one ping each 0.5 s
    events = [json.loads(line[5:]) for line in slow.text.splitlines() if line.startswith("data:")]
    assert len(events) == 1 and events[0]["id"] == 2
    assert events[0]["result"]["structuredContent"]["content"] == "echo: slow"
    assert not through_sdk.is_error and through_sdk.structured_content["content"] == "echo: sdk"
    # a 2025-11-25 session's call, answered as JSON when quick, is kept alive the same way
    assert slow_in_session.headers["content-type"].startswith("text/event-stream")
    assert slow_in_session.text.count(": ping") >= 3
    last = [json.loads(line[5:]) for line in slow_in_session.text.splitlines() if line.startswith("data:")][-1]
    assert last["id"] == 2 and last["result"]["structuredContent"]["content"] == "echo: slow too"


def session_call(http: httpx2.Client, url: str, prompt: str) -> httpx2.Response:
    """A 2025-11-25 session opened on `url`, then one `chat_complete` call in it (request id 2)."""
    both = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    opened = http.post(url, headers=both, json=INITIALIZE)
    session = {**both, "Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
    http.post(url, headers=session, json=INITIALIZED)
    call = {"name": "chat_complete", "arguments": {"prompt": prompt}}
    return http.post(url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})


async def test_a_client_that_leaves_cancels_its_call(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """The client gives up on a 30 s call after 2.5 s: the call is cancelled then, not run to its end, and the
    ledger says so."""
    with http_gateway(write_config(tmp_path / "genroute.toml", config_data)) as gateway:
        emulator.latency_ms = 30_000
        with httpx2.Client(timeout=httpx2.Timeout(30, read=2.5)) as http, pytest.raises(httpx2.ReadTimeout):
            http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(1, "never mind"))
        deadline = time.monotonic() + 5
        while not ledger(config_data) and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded; the call takes 30 s
            await anyio.sleep(0.1)
        rows = ledger(config_data)
        assert "Traceback" not in gateway.stderr() and "Exception" not in gateway.stderr()
    assert [row["outcome"] for row in rows] == ["cancelled"]


async def test_the_answer_does_not_wait_for_a_busy_ledger(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Another process holds the SQLite write lock: the call is answered all the same, and its ledger record is
    written once the lock is free (usage/held_writes.py). Before, the answer waited for the lock."""
    with http_gateway(write_config(tmp_path / "genroute.toml", config_data)) as gateway:
        with httpx2.Client(timeout=30) as http:
            http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(1, "first"))  # the database exists
            blocker = sqlite3.connect(Path(config_data["server"]["data_dir"]) / "genroute.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            try:
                started = time.monotonic()
                answer = http.post(gateway.mcp_url, headers=HEADERS, json=chat_call(2, "while locked"), timeout=20)
                waited = time.monotonic() - started
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
        deadline = time.monotonic() + 10
        while len(ledger(config_data)) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded
            await anyio.sleep(0.1)
        rows = ledger(config_data)
    assert answer.json()["result"]["structuredContent"]["content"] == "echo: while locked"
    assert waited < 3, f"the answer waited {waited:.1f} s for the ledger"
    assert [row["outcome"] for row in rows] == ["ok", "ok"]


async def test_a_listen_stream_is_left_to_the_sdk(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """A 2026-07-28 `subscriptions/listen` stream is the SDK's own long-lived answer: past keepalive_s nothing is
    added to it or held back, and a reload's notification still reaches it."""
    config_data.setdefault("http", {})["keepalive_s"] = 0.3
    path = write_config(tmp_path / "genroute.toml", config_data)
    listen = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True, "promptsListChanged": True}, "_meta": MODERN_META},
    }
    headers = {**HEADERS, "mcp-method": "subscriptions/listen"}
    del headers["mcp-name"]
    heard: list[dict[str, Any]] = []
    with http_gateway(path) as gateway:
        async with (
            httpx2.AsyncClient(timeout=30) as http,
            http.stream("POST", gateway.mcp_url, headers=headers, json=listen) as stream,
        ):
            lines = stream.aiter_lines()
            with anyio.fail_after(20):
                async for line in lines:
                    if line.startswith("data:"):
                        heard.append(json.loads(line[5:]))
                        if len(heard) == 1:  # the acknowledgement: now outlast keepalive_s, then reload
                            await anyio.sleep(1.5)
                            config_data.setdefault("presets", {})["haiku"] = {"template": "A haiku about {topic}"}
                            write_config(path, config_data)
                            os.kill(gateway.process.pid, signal.SIGHUP)
                        elif "list_changed" in heard[-1].get("method", ""):
                            break
        log = gateway.stderr()
    assert heard[0]["method"] == "notifications/subscriptions/acknowledged"
    assert any(message.get("method", "").endswith("list_changed") for message in heard[1:])
    assert "long answer" not in log and "Traceback" not in log


async def test_every_call_that_reached_the_provider_is_recorded_when_clients_leave(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """30 slow calls at once; a third of the clients leave before keepalive_s, a third after the stream is
    committed. Each call the provider saw has exactly one ledger record: answered ones `ok`, the rest `cancelled`."""
    config_data.setdefault("http", {})["keepalive_s"] = 0.5
    plan: list[float | None] = [None, 0.3, 1.2] * 10

    async def call(url: str, request_id: int, leave_after: float | None) -> str | None:
        async with httpx2.AsyncClient(timeout=30) as http:
            with anyio.move_on_after(leave_after if leave_after is not None else 30):
                answer = await http.post(url, headers=HEADERS, json=chat_call(request_id, f"p{request_id}"))
                return answer.text
        return None

    with http_gateway(write_config(tmp_path / "genroute.toml", config_data)) as gateway:
        emulator.latency_ms = 2000
        answers: list[str | None] = [None] * len(plan)

        async def run(index: int) -> None:
            answers[index] = await call(gateway.mcp_url, index + 1, plan[index])

        async with anyio.create_task_group() as group:
            for index in range(len(plan)):
                group.start_soon(run, index)
        deadline = time.monotonic() + 10
        while len(ledger(config_data)) < len(emulator.calls("chat")) and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.1)
        rows = ledger(config_data)
        log = gateway.stderr()
    answered = [index for index, text in enumerate(answers) if text is not None]
    assert answered == [index for index, leave in enumerate(plan) if leave is None]
    assert all(f"echo: p{index + 1}" in str(answers[index]) for index in answered)
    assert len(rows) == len(emulator.calls("chat"))
    outcomes = [row["outcome"] for row in rows]
    assert outcomes.count("ok") == len(answered) and set(outcomes) <= {"ok", "cancelled"}
    assert "Traceback" not in log
