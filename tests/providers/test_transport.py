"""The provider clients' transport (aiohttp under httpx2) against raw loopback servers that misbehave on purpose.

What matters is the error class each failure becomes: it decides whether a paid request may be sent again
(providers/http.py `_NOT_SENT`). A connection that never opened is "not sent"; one that closed after the request
went out, or an answer that never came, is "sent". Keep-alive reuse and request bodies are checked on the wire.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from mcp_server.config import ProviderConfig
from mcp_server.providers.http import _NOT_SENT, MAX_JOINED_PATHS, LazyClient
from mcp_server.providers.transport import AiohttpTransport

pytestmark = pytest.mark.anyio
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

Handler = Callable[[socket.socket, bytes], bool]  # (connection, request bytes) -> keep the connection open


class RawServer:
    """A loopback TCP server answering each request with `handler`; counts connections, keeps requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            while not self.stopped.is_set():
                request = _read_request(conn)
                if not request:
                    return
                self.requests.append(request)
                if not self.handler(conn, request):
                    return

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += conn.recv(65536)
    except (TimeoutError, OSError):
        return b""
    return head + b"\r\n\r\n" + body


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(port: int, timeout_s: float = 5.0) -> httpx2.AsyncClient:
    import ssl

    transport = AiohttpTransport(ssl_context=ssl.create_default_context(), max_connections=4)
    return httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=timeout_s)


def answer(conn: socket.socket, _: bytes) -> bool:
    conn.sendall(OK)
    return True


async def test_answers_reuse_one_connection_and_carry_the_body(serve: Callable[[Handler], RawServer]) -> None:
    server = serve(answer)
    async with client(server.port) as http:
        for n in range(3):
            response = await http.post("/v1/chat", json={"n": n}, headers={"authorization": "Bearer k"})
            assert response.status_code == 200 and response.json() == {"ok": True}
    assert server.connections == 1  # kept alive and reused
    assert len(server.requests) == 3
    head, _, body = server.requests[2].partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v1/chat http/1.1" and b"authorization: bearer k" in lines
    names = [line.split(b":")[0] for line in lines[1:]]
    assert len(names) == len(set(names))  # httpx2's headers as they are: nothing added twice by aiohttp
    assert body == b'{"n":2}'


async def test_a_refused_connection_is_not_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    async with client(port) as http:
        with pytest.raises(httpx2.ConnectError) as caught:
            await http.post("/v1/chat", json={})
    assert isinstance(caught.value, _NOT_SENT)


async def test_a_connection_closed_after_the_request_counts_as_sent(serve: Callable[[Handler], RawServer]) -> None:
    server = serve(lambda conn, request: False)  # reads the whole request, then hangs up without a word
    async with client(server.port) as http:
        with pytest.raises(httpx2.TransportError) as caught:
            await http.post("/v1/video", json={"paid": True})
    assert not isinstance(caught.value, _NOT_SENT)  # the upstream may have started a paid job
    assert isinstance(caught.value, httpx2.RemoteProtocolError)
    assert len(server.requests) == 1


async def test_no_answer_in_time_is_a_read_timeout(serve: Callable[[Handler], RawServer]) -> None:
    stop = threading.Event()
    server = serve(lambda conn, request: bool(stop.wait(5)))
    try:
        async with client(server.port, timeout_s=0.3) as http:
            with pytest.raises(httpx2.ReadTimeout) as caught:
                await http.post("/v1/chat", json={})
        assert not isinstance(caught.value, _NOT_SENT)
    finally:
        stop.set()


async def test_an_answer_cut_mid_body_fails_while_it_is_read(serve: Callable[[Handler], RawServer]) -> None:
    def cut(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        return False

    server = serve(cut)
    async with client(server.port) as http:
        async with http.stream("POST", "/v1/chat", json={}) as response:
            assert response.status_code == 200
            with pytest.raises(httpx2.RemoteProtocolError):
                await response.aread()


async def test_an_answer_with_a_20_kb_header_is_read(serve: Callable[[Handler], RawServer]) -> None:
    """A long Set-Cookie or Link header from a gateway (httpcore2 took heads up to 100 KB; aiohttp's default
    stops at 8,190 bytes a field)."""
    cookie = b"session=" + b"c" * 20_000

    def long_header(conn: socket.socket, _: bytes) -> bool:
        conn.sendall(OK.replace(b"\r\n\r\n", b"\r\nSet-Cookie: " + cookie + b"\r\n\r\n", 1))
        return True

    server = serve(long_header)
    async with client(server.port) as http:
        response = await http.get("/v1/models")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.headers["set-cookie"].encode() == cookie


async def test_requests_built_on_a_joined_path_match_httpx2s_own() -> None:
    """LazyClient joins each path to base_url once; the requests it builds must be the ones httpx2 builds."""
    config = ProviderConfig(protocol="openai", base_url="https://gw.example/api/v1/")
    lazy = LazyClient(config, headers={"X-Team": "t"})
    plain = httpx2.AsyncClient(base_url=config.base_url or "", headers={"X-Team": "t"})
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/chat/completions", {"json": {"model": "m", "messages": []}}),
        ("GET", "/videos/task-1", {"params": {"wait": "1"}}),
        ("GET", "/search?q=a%20b", {}),
        ("GET", "https://files.example/x.png?sig=abc", {}),  # absolute: not joined, not remembered
    ]
    try:
        for _ in range(2):  # the second round is built on the remembered joins
            for method, url, options in cases:
                ours, theirs = lazy.build_request(method, url, **options), plain.build_request(method, url, **options)
                assert (ours.method, ours.url, ours.content) == (theirs.method, theirs.url, theirs.content)
                assert ours.headers.multi_items() == theirs.headers.multi_items()
        for n in range(MAX_JOINED_PATHS * 3):  # a path per video job: what is remembered stays bounded
            assert lazy.build_request("GET", f"/videos/{n}").url == plain.build_request("GET", f"/videos/{n}").url
        assert len(lazy._joined) <= MAX_JOINED_PATHS
    finally:
        await lazy.aclose()
        await plain.aclose()
