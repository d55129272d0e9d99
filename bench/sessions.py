"""Plain JSON-RPC MCP clients: on 2025-11-25 sessions, the way most connectors call today, and on stateless
2026-07-28 requests over HTTP (no session; the version and client in each request's `_meta`).

`initialize` once (HTTP: the answer's `Mcp-Session-Id` is sent back on every later request), then one request per
`tools/call` with `{prompt, model}` and nothing else: no SDK client, no result validation, no `_meta`. Over HTTP it
is httpx2 with a pooled keep-alive connection; over stdio it writes and reads JSON lines on the server's pipes.
The SDK `Client` (bench/overhead.py) speaks 2026-07-28 too, and also checks every structured result against the
tool's outputSchema: the plain 2026-07-28 client tells the server's share of a call from that client's own.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

PROTOCOL = "2025-11-25"
_INIT_PARAMS = {
    "protocolVersion": PROTOCOL,
    "capabilities": {},
    "clientInfo": {"name": "bench-jsonrpc", "version": "1"},
}
TIMEOUT_S = 60.0
MODERN = "2026-07-28"
_MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench-jsonrpc", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class SessionError(RuntimeError):
    """An answer that was not a successful tool result (or no answer)."""


def _result(message: dict[str, Any], what: str) -> dict[str, Any]:
    result = message.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise SessionError(f"{what}: {json.dumps(message)[:300]}")
    return result


def _message_from(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST: a JSON body, or the last `data:` line of an SSE stream."""
    if response.status_code != 200:
        raise SessionError(f"HTTP {response.status_code}: {response.text[:200]}")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        data = [d for d in data if d]
        if not data:
            raise SessionError("an SSE answer without data")
        return json.loads(data[-1])
    return response.json()


class HttpSession:
    """One 2025-11-25 session over streamable HTTP; `headers` go on every request (e.g. a bearer key)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.client = httpx2.AsyncClient(
            headers={"accept": "application/json, text/event-stream", **(headers or {})},
            timeout=httpx2.Timeout(TIMEOUT_S),
            trust_env=False,
        )
        self.ids = itertools.count(1)

    async def __aenter__(self) -> HttpSession:
        response = await self.client.post(
            self.url, json={"jsonrpc": "2.0", "id": next(self.ids), "method": "initialize", "params": _INIT_PARAMS}
        )
        _result(_message_from(response), "initialize")
        session = response.headers.get("mcp-session-id")
        if session:
            self.client.headers["mcp-session-id"] = session
        self.client.headers["mcp-protocol-version"] = PROTOCOL
        sent = await self.client.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        if sent.status_code not in (200, 202):
            raise SessionError(f"notifications/initialized: HTTP {sent.status_code}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call"}
        body["params"] = {"name": tool, "arguments": arguments}
        return _result(_message_from(await self.client.post(self.url, json=body)), tool)


class StatelessHttpClient:
    """2026-07-28 over streamable HTTP, as the SDK `Client` sends it (headers, `_meta`), minus its result check."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        accept = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN}
        self.client = httpx2.AsyncClient(
            headers={**accept, **(headers or {})},
            timeout=httpx2.Timeout(TIMEOUT_S),
            trust_env=False,
        )
        self.ids = itertools.count(1)

    async def __aenter__(self) -> StatelessHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        params = {"name": tool, "arguments": arguments, "_meta": _MODERN_META}
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call", "params": params}
        headers = {"mcp-method": "tools/call", "mcp-name": tool}
        return _result(_message_from(await self.client.post(self.url, json=body, headers=headers)), tool)


class StdioSession:
    """One 2025-11-25 session with a server this client starts, JSON lines on its stdin/stdout."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: str) -> None:
        self.args, self.env, self.cwd = args, env, cwd
        self.process: Process | None = None
        self.ids = itertools.count(1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> StdioSession:
        self.process = await anyio.open_process(self.args, env=self.env, cwd=self.cwd, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        self.reader = BufferedByteReceiveStream(self.process.stdout)
        await self._request("initialize", _INIT_PARAMS)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            await self.process.stdin.aclose()
        with anyio.move_on_after(5):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self.ids)
        await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        with anyio.fail_after(TIMEOUT_S):
            while True:  # skip notifications and log messages until our answer
                message = json.loads(await self.reader.receive_until(b"\n", 64 * 1024 * 1024))
                if message.get("id") == request_id:
                    return _result(message, method)

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self._request("tools/call", {"name": tool, "arguments": arguments})
