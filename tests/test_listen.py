"""The HTTP listener genroute opens itself (listen.py): connections on it send without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

from mcp_server.listen import open_listener


def test_connections_accepted_on_plain_asyncio_have_nagle_off() -> None:
    """asyncio (the loop on Windows, and wherever uvloop is missing) sets TCP_NODELAY only on sockets made with
    proto IPPROTO_TCP. Left on, a streamed answer's later writes waited ~40 ms for the client's delayed ACK."""
    listener = open_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            for _ in range(500):  # 5 s at most for the server side to run
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())  # plain asyncio, not uvloop (which turns Nagle off on every TCP socket itself)
    assert seen and seen[0] != 0
