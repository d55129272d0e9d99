"""Both HTTP protocol generations, /healthz, Host protection, and the Claude Desktop example as written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters

from emulator import Emulator
from tests.support import (
    INITIALIZE,
    INITIALIZED,
    GatewayProcess,
    base_config,
    child_env,
    genroute_argv,
    http_gateway,
    write_config,
)

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One `serve --http` on the base config for the tests below that only make requests to it."""
    directory = tmp_path_factory.mktemp("transports")
    with http_gateway(write_config(directory / "genroute.toml", base_config(emulator_server, directory))) as gateway:
        yield gateway


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_serves_both_protocol_generations(served: GatewayProcess, emulator: Emulator, mode: str) -> None:
    """'auto' speaks the stateless 2026-07-28 protocol; 'legacy' the 2025-11-25 sessions the Inspector uses."""
    async with Client(served.mcp_url, mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("chat_complete", {"prompt": "ping"})
        version = client.protocol_version
    assert {"chat_complete", "list_models"} <= tools
    assert result.structured_content["content"] == "echo: ping"
    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28")


async def test_healthz_and_dns_rebinding_protection(served: GatewayProcess) -> None:
    health = httpx2.get(served.url + "/healthz", timeout=5)
    rebind = httpx2.post(
        served.mcp_url,
        headers={"Host": "evil.example:80", "Content-Type": "application/json", "Accept": "application/json"},
        content=b"{}",
        timeout=5,
    )
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert rebind.status_code in (403, 421)


def test_ctrl_c_stops_http_cleanly(config_path: Path) -> None:
    """SIGINT (Ctrl-C in a terminal) shuts `serve --http` down gracefully: exit status 0, no traceback."""
    with http_gateway(config_path) as gateway:
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGINT)
        status = gateway.process.wait(timeout=30)
    assert status == 0, gateway.stderr()[-2000:]
    assert "Traceback" not in gateway.stderr()


def chat_call(request_id: int, arguments: dict[str, str]) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "chat_complete", "arguments": arguments},
    }


async def test_session_requests_are_answered_as_json_unless_they_stream_progress(served: GatewayProcess) -> None:
    """2025-11-25 sessions: a request is answered with one JSON body; one with a progressToken as an SSE stream
    carrying its progress, then its result. The Accept header stays the spec's (both types) for both."""
    both = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with httpx2.Client(timeout=30) as http:
        opened = http.post(served.mcp_url, headers=both, json=INITIALIZE)
        session = {**both, "Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        assert http.post(served.mcp_url, headers=session, json=INITIALIZED).status_code == 202
        plain = http.post(served.mcp_url, headers=session, json=chat_call(2, {"prompt": "plain"}))
        streamed_call = chat_call(3, {"prompt": "one two three"})
        streamed_call["params"]["_meta"] = {"progressToken": "p1"}  # type: ignore[index]
        streamed = http.post(served.mcp_url, headers=session, json=streamed_call)
        json_only = http.post(
            served.mcp_url, headers={**session, "Accept": "application/json"}, json=chat_call(4, {"prompt": "x"})
        )
    assert opened.headers["content-type"] == "application/json" and opened.json()["result"]["serverInfo"]
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["result"]["structuredContent"]["content"] == "echo: plain"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in streamed.text.splitlines() if line.startswith("data:") and line[5:]]
    progress = [e for e in events if e.get("method") == "notifications/progress"]
    assert progress and all(e["params"]["progressToken"] == "p1" for e in progress)
    assert events[-1]["id"] == 3 and events[-1]["result"]["structuredContent"]["content"] == "echo: one two three"
    assert json_only.status_code == 406  # as before: a session client must accept both


@contextmanager
def raw_stdio_server(config_path: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """`genroute serve` on plain pipes, as a JSON-lines client drives it; killed at the end. A watchdog bounds
    every read: a killed server's stdout ends."""
    server = subprocess.Popen(
        [*genroute_argv(), "--config", str(config_path), *options, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    watchdog = threading.Timer(60, server.kill)
    watchdog.start()
    try:
        yield server
    finally:
        watchdog.cancel()
        server.kill()
        server.wait(timeout=30)
        for stream in (server.stdin, server.stdout, server.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


def send(server: subprocess.Popen[str], messages: list[dict[str, object]]) -> None:
    assert server.stdin is not None
    server.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    server.stdin.flush()


def test_stdout_carries_only_protocol_messages(config_path: Path) -> None:
    """Over stdio every stdout line is JSON-RPC; the debug logs of a real tool call go to stderr."""
    # stdin stays open until the last reply is out, as a real client keeps it: at EOF the SDK cancels
    # requests still in flight, so closing it at once would race the tools/call.
    with raw_stdio_server(config_path, "--log-level", "DEBUG") as server:
        send(server, [INITIALIZE, INITIALIZED, chat_call(2, {"prompt": "hi", "model": "nope"})])
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        stdout, stderr = server.communicate(timeout=60)
    replies = [json.loads(line) for line in lines + stdout.splitlines() if line]
    assert [r.get("id") for r in replies] == [1, 2]
    assert replies[1]["result"]["isError"] is True
    assert "chat_complete failed: model_not_found" in stderr


async def test_claude_desktop_example_works_as_written(tmp_path: Path) -> None:
    """The example (as the README shows it) launches a working server on its own: no config, no key."""
    text = (ROOT / "claude_desktop_config.example.json").read_text()
    assert f"```json\n{text}```" in (ROOT / "README.md").read_text()
    server = json.loads(text)["mcpServers"]["genroute"]
    assert "env" not in server  # nothing that does nothing without a config
    env = {**child_env(), "HOME": str(tmp_path)}  # a fresh user: data dir under HOME
    # `genroute` as installed beside this interpreter (the README's install), found on PATH as Claude Desktop would
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GENROUTE_CONFIG", None)
    params = StdioServerParameters(command=server["command"], args=server["args"], env=env, cwd="/")
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        models = await client.call_tool("list_models", {})
    assert {"chat_complete", "list_models"} <= tools
    assert not models.is_error


def test_stdio_reads_a_message_line_of_megabytes(config_path: Path) -> None:
    """A request line far over asyncio's 64 KiB default (inline images and audio make such lines) is read whole
    and answered, and the next request on the same pipe is answered after it."""
    huge = {"prompt": "hello " * 500_000, "model": "nope"}  # 3 MB: refused for its length, counted whole
    with raw_stdio_server(config_path) as server:
        send(server, [INITIALIZE, INITIALIZED, chat_call(2, huge), chat_call(3, {"prompt": "hi", "model": "nope"})])
        assert server.stdout is not None
        replies = [json.loads(server.stdout.readline()) for _ in range(3)]
    assert [r.get("id") for r in replies] == [1, 2, 3]
    assert all(r["result"]["isError"] for r in replies[1:])
    assert "3,000,000 characters" in replies[1]["result"]["content"][0]["text"]


def test_a_client_gone_mid_call_ends_the_stdio_server_quietly(config_path: Path, emulator: Emulator) -> None:
    """The client closes its read end while a call is still upstream: the answer has nowhere to go. The server
    drops it and exits 0 when stdin closes, with no traceback on stderr."""
    emulator.fail_next("chat", status=200, latency_ms=800)  # a normal answer, late
    with raw_stdio_server(config_path) as server:
        send(server, [INITIALIZE, INITIALIZED, chat_call(2, {"prompt": "hi", "model": "gpt-5.5"})])
        assert server.stdout is not None and server.stdin is not None and server.stderr is not None
        assert json.loads(server.stdout.readline())["id"] == 1
        server.stdout.close()
        time.sleep(1.5)  # the answer came back and found the pipe closed
        server.stdin.close()
        assert server.wait(timeout=30) == 0
        assert "Traceback" not in server.stderr.read()
