"""`genroute serve` over stdio: the SDK's stdio transport, its pipes read and written on the event loop.

Why: the SDK reads each line, and writes then flushes each message, through `anyio.wrap_file`: a worker-thread
round trip each, three a tool call (~110 us of CPU and ~160 us of wall time each on the 2-core bench machine,
a tenth of a whole chat call; docs/performance.md). MCP clients talk to their servers over pipes, which the
event loop watches directly. Anything else on fd 0 or 1 (a terminal, a file) keeps the SDK's own path.

As the SDK does, the wire is served from private duplicates while fd 0 reads the null device and fd 1 writes to
stderr, so nothing a library prints reaches the client as a broken message; both are restored at the end.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.stdio import stdio_server

from mcp_server import sdk_internals

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

# The longest message line read (a request carrying inline images or audio stays far below it).
MAX_LINE_BYTES = 256 * 1024 * 1024


async def serve_stdio(mcp: MCPServer[Any]) -> None:
    """`mcp.run_stdio_async()` on genroute's streams. The SDK's transport only iterates `stdin` and awaits
    `write`/`flush` on `stdout`, which is all `_Lines` and `_Out` offer (it asks for anyio files by type)."""
    async with _wire() as (stdin, stdout), stdio_server(stdin, stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
        await sdk_internals.serve_streams(mcp, read_stream, write_stream)


class _Lines:
    """The client's messages, one line each, as the SDK's transport iterates them."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:  # the client closed stdin: the last line, if any
                if end.partial:
                    yield end.partial.decode("utf-8", errors="replace")
                return
            except asyncio.LimitOverrunError as over:  # dropped up to its end; the SDK answers a parse error
                await self._skip(over.consumed)
                yield ""
                continue
            yield line.decode("utf-8", errors="replace")

    async def _skip(self, consumed: int) -> None:
        while True:
            await self._reader.readexactly(consumed)
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as over:
                consumed = over.consumed


class _Out:
    """What the SDK's transport writes each message through: `write`, then `flush` (waits while the pipe is full).

    A client that closed its end is the end of the stream (`ClosedResourceError`, which the SDK's writer ends on
    quietly), not a traceback on stderr; the server stops when stdin closes, as it does otherwise."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        if self._writer.transport.is_closing():
            raise anyio.ClosedResourceError
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        try:
            await self._writer.drain()
        except ConnectionError:
            raise anyio.ClosedResourceError from None


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def _wire() -> AsyncIterator[tuple[_Lines, _Out] | tuple[None, None]]:
    """(stdin, stdout) for the SDK's transport: on the event loop for pipes; (None, None), the SDK's own, else."""
    if sys.platform == "win32" or not (_is_pipe(0) and _is_pipe(1)):
        yield None, None
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = _divert(0, os.open(os.devnull, os.O_RDONLY)), _divert(1, os.dup(2))
    transports: list[asyncio.BaseTransport] = []
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(wire_in), "rb", buffering=0)
        )
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(os.dup(wire_out), "wb", buffering=0)
        )
        transports.append(write_transport)
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)  # type: ignore[arg-type]
        yield _Lines(reader), _Out(writer)
    finally:
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)
        for fd in (wire_in, wire_out):
            os.close(fd)
        for transport in transports:
            with suppress(Exception):
                transport.close()


def _divert(fd: int, replacement: int) -> int:
    """A private duplicate of `fd` (close-on-exec, above the standard range); `fd` itself now points at
    `replacement`."""
    import fcntl

    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(replacement, fd)
    os.close(replacement)
    return private
