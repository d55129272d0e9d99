"""The provider clients' transport: httpx2's client API (auth flows, hooks, timeouts, responses) over aiohttp's
connection pool and C HTTP parser.

Why: an upstream call through httpx2's default transport (httpcore2 and the pure-Python h11 parser on anyio
streams) cost ~1.15 ms of CPU here; through aiohttp's 0.34 ms, and 0.57 ms with httpx2's client layer kept on top
(docs/performance.md). That is a third of a whole chat call's CPU. (httpx-aiohttp does the same job, but maps a
connection the server closed after the request went out to `ConnectTimeout`, which genroute reads as "never sent,
safe to send again": a paid request could go twice. The mapping below keeps httpcore2's meaning.)

Request bodies are read into memory before sending: every genroute upload (an image to edit, audio to transcribe)
is already in memory and bounded by the tools' input limits.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import nullcontext

import aiohttp
import anyio
import httpx2
from yarl import URL

# How long an idle upstream connection is kept open (httpx2's default keepalive_expiry).
KEEPALIVE_S = 5.0
# The longest status line or header field of an answer: httpcore2 took a head of up to 100 KB, aiohttp's default is
# 8,190 bytes a field, which a long Set-Cookie or Link header from a gateway can pass.
MAX_HEADER_FIELD_BYTES = 100 * 1024


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One provider's connection pool: up to `max_connections` at once, idle ones closed after KEEPALIVE_S.

    The aiohttp session is opened on first use (it belongs to the running event loop); cookies are left to httpx2's
    client, decompression to httpx2's response.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext, max_connections: int) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ssl=self._ssl_context, keepalive_timeout=KEEPALIVE_S
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
                max_line_size=MAX_HEADER_FIELD_BYTES,
                max_field_size=MAX_HEADER_FIELD_BYTES,
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout: dict[str, float | None] = request.extensions.get("timeout", {})
        connect, read, write, pool = (timeout.get(name) for name in ("connect", "read", "write", "pool"))
        body = await request.aread()
        limits = aiohttp.ClientTimeout(total=None, connect=_sum(pool, connect), sock_connect=connect, sock_read=read)
        # aiohttp has no write timeout: the whole way to the answer's head is bounded instead (a stalled upload)
        bound = _sum(pool, connect, write, read)
        try:
            with anyio.fail_after(bound) if bound is not None else nullcontext():
                response = await self._opened().request(
                    request.method,
                    URL(str(request.url), encoded=True),
                    headers=request.headers.multi_items(),
                    data=body or None,
                    allow_redirects=False,  # httpx2's client follows them, when asked
                    timeout=limits,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _as_httpx(exc, request) from exc
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _ResponseBody(httpx2.AsyncByteStream):
    """An answer's body as it arrives; closing it gives a fully read connection back to the pool (else closes it)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _as_httpx(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


def _sum(*parts: float | None) -> float | None:
    """A total of timeouts, or None (no bound) when any part is unbounded."""
    return None if any(part is None for part in parts) else sum(part for part in parts if part is not None)


def _as_httpx(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """aiohttp's failure as the httpx2 error httpcore2 raises for it. What matters is the class: `ConnectError` and
    `ConnectTimeout` mean no byte of the request left (providers/http.py `_NOT_SENT`); anything unknown counts as sent.
    """
    error: type[httpx2.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # waiting for the pool or the connection to open
        error = httpx2.ConnectTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):  # DNS, refused, TLS handshake: the connection never opened
        error = httpx2.ConnectError
    elif isinstance(exc, aiohttp.ServerTimeoutError):  # no byte from the upstream in `read` seconds
        error = httpx2.ReadTimeout
    elif isinstance(exc, TimeoutError):  # the bound on the way to the answer's head: a stalled upload
        error = httpx2.WriteTimeout
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx2.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError | aiohttp.ServerDisconnectedError):
        error = httpx2.RemoteProtocolError  # a cut or malformed answer, or the connection closed before one
    else:
        error = httpx2.ReadError
    return error(type(exc).__name__, request=request)
