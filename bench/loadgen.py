"""A lean MCP load generator: the SDK client's exact `tools/call` request, sent over raw keep-alive sockets.

The SDK client spends about as much CPU per call as the server does; on a 2-core machine a load made
with it would measure the client. This one sends the same bytes (stateless 2026-07-28 protocol, as
`Client(url)` sends them) over plain asyncio streams and reads the JSON answer, so nearly all CPU
goes to the server under test.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PROTOCOL = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def tool_call_request(
    url: str, tool: str, arguments: dict[str, Any], request_id: int = 1, headers: dict[str, str] | None = None
) -> bytes:
    """The raw HTTP/1.1 request for one `tools/call`, ready to write to a keep-alive connection (`headers`: more,
    such as a bearer key)."""
    parts = urlsplit(url)
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": META},
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\n"
        f"host: {parts.netloc}\r\n"
        "accept: application/json, text/event-stream\r\n"
        "content-type: application/json\r\n"
        f"mcp-protocol-version: {PROTOCOL}\r\n"
        "mcp-method: tools/call\r\n"
        f"mcp-name: {tool}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class CallFailed(Exception):
    """A call that did not come back as a successful tool result."""


class Connection:
    """One keep-alive HTTP/1.1 connection: one request at a time, like one sequential client."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self, request: bytes) -> dict[str, Any]:
        """Send one prepared request; the parsed JSON-RPC result, or CallFailed."""
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise CallFailed("connection closed by the server")
        status = int(status_line.split()[1])
        length = None
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise CallFailed(f"HTTP {status} without content-length (a streamed answer?)")
        body = await self.reader.readexactly(length)
        if status != 200:
            raise CallFailed(f"HTTP {status}: {body[:200]!r}")
        message = json.loads(body)
        result = message.get("result")
        if not isinstance(result, dict) or result.get("isError"):
            raise CallFailed(f"tool error: {json.dumps(message)[:300]}")
        return result

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


@dataclass
class LoadResult:
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(url: str, request: bytes, clients: int, seconds: float, warmup_s: float = 0.5) -> LoadResult:
    """`clients` connections, each calling back to back for `seconds` (after `warmup_s` unmeasured)."""
    connections = [Connection(url) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    result = LoadResult()
    start = time.perf_counter() + warmup_s
    stop = start + seconds

    async def worker(connection: Connection) -> None:
        """Call back to back; a call counts when it completes inside the window [start, stop]."""
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            try:
                await connection.call(request)
            except (CallFailed, OSError, asyncio.IncompleteReadError, ValueError) as error:
                if began >= start:
                    result.errors += 1
                    result.first_error = result.first_error or str(error)[:300]
                await connection.close()
                continue
            ended = time.perf_counter()
            if start <= ended <= stop:
                result.calls += 1
                if began >= start:
                    result.latencies_ms.append((ended - began) * 1000.0)

    try:
        await asyncio.wait_for(asyncio.gather(*(worker(c) for c in connections)), timeout=warmup_s + seconds + 120)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    result.seconds = seconds
    return result


async def burst(url: str, request: bytes, clients: int, timeout_s: float) -> LoadResult:
    """`clients` calls at once, one per connection; every one must finish within `timeout_s`."""
    connections = [Connection(url) for _ in range(clients)]
    result = LoadResult()
    await asyncio.gather(*(c.open() for c in connections))
    began = time.perf_counter()

    async def one(connection: Connection) -> None:
        started = time.perf_counter()
        try:
            await connection.call(request)
        except (CallFailed, OSError, asyncio.IncompleteReadError, ValueError) as error:
            result.errors += 1
            result.first_error = result.first_error or str(error)[:300]
            return
        result.calls += 1
        result.latencies_ms.append((time.perf_counter() - started) * 1000.0)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in connections)), timeout=timeout_s)
    except TimeoutError:
        result.errors = clients - result.calls
        result.first_error = result.first_error or f"not all calls finished within {timeout_s} s"
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    result.seconds = time.perf_counter() - began
    return result


async def probe_lag(url: str, stop: asyncio.Event, interval_s: float = 0.05) -> list[float]:
    """GET `url` (a /healthz) every `interval_s` on its own connection until `stop`; the latencies in ms.

    While a server's event loop is stalled its answer waits: the worst latency is the worst stall.
    """
    parts = urlsplit(url)
    request = f"GET {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    latencies: list[float] = []
    try:
        while not stop.is_set():
            began = time.perf_counter()
            writer.write(request)
            await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - began) * 1000.0)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass
    finally:
        writer.close()
    return latencies
