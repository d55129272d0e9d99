"""What every HTTP adapter shares: the pooled client, and the one send path (`stream`, `fetch`) that turns every
failure into its error class with every secret redacted."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import email.utils
import json
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2

from mcp_server.config import ProviderConfig
from mcp_server.errors import (
    AnswerInterrupted,
    GatewayError,
    MalformedAnswer,
    Unreachable,
    UpstreamFailure,
    UpstreamHTTPError,
    UpstreamTimeout,
    http_error,
)
from mcp_server.providers.redact import Redactor

MAX_ERROR_TEXT = 500
MAX_BODY_TEXT = 64_000  # of an error body, read for its fields (the rest is never looked at)
MAX_FIELD_TEXT = 200  # an upstream error's type, code or param
# httpx2 request hooks every provider client runs (observability/tracing.py adds the one that sends `traceparent`
# when traces are on); empty otherwise, so a request pays nothing for them
REQUEST_HOOKS: list[Callable[[httpx2.Request], Awaitable[None]]] = []


# At exit, OpenSSL frees its global tables (libcrypto's own C atexit handler). A process that exited while the
# thread below was still loading the CA store (outside the GIL, at low priority on a busy machine) crashed with
# SIGSEGV (core dumps: that thread in X509_STORE_load_file_ex, the main thread in OPENSSL_cleanup), e.g. on a busy
# port or a failed start. Python's atexit handlers run before the C library's: the thread is waited for there.
TLS_EXIT_WAIT_S = 10.0
_tls_lock = threading.Lock()
_tls: concurrent.futures.Future[ssl.SSLContext] | None = None


def prepare_tls_context() -> None:
    """Start building the TLS context all provider clients share, in a low-priority background thread.

    Building one loads the system CA store (60-100 ms of CPU, mostly outside the GIL); the thread then imports the
    transport (aiohttp, ~0.2 s). Started once the surface is built, it is ready long before the first upstream
    call, and it never delays `initialize`: provider clients are built lazily (see `LazyClient`), so nothing waits
    for it at start.
    """
    global _tls
    with _tls_lock:
        if _tls is not None:
            return
        future: concurrent.futures.Future[ssl.SSLContext] = concurrent.futures.Future()
        _tls = future

    def build() -> None:
        if hasattr(os, "setpriority"):  # Linux: a thread is a task; let the main thread win a busy core
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            context = httpx2.create_ssl_context(trust_env=False)
            # the transport's aiohttp builds TLS contexts of its own at import: here too, before the exit wait ends
            import mcp_server.providers.transport  # noqa: F401

            future.set_result(context)
        except BaseException as exc:  # surfaces in tls_context(), on the caller's thread
            future.set_exception(exc)

    threading.Thread(target=build, name="genroute-tls-context", daemon=True).start()
    atexit.register(concurrent.futures.wait, [future], timeout=TLS_EXIT_WAIT_S)


def tls_context() -> ssl.SSLContext:
    """The shared TLS context (certificate checks on, as httpx2's default), built once per process."""
    prepare_tls_context()
    assert _tls is not None
    return _tls.result(timeout=60)


MAX_JOINED_PATHS = 64


class LazyClient:
    """A provider's pooled httpx2 client, built on first use and then reused for the server's lifetime.

    Attribute access is passed to the real client, so adapters use it as an `httpx2.AsyncClient`.
    Building it needs the shared TLS context; deferring it keeps that off the way to `initialize`.
    """

    def __init__(
        self, config: ProviderConfig, headers: dict[str, str] | None = None, auth: httpx2.Auth | None = None
    ) -> None:
        self._config = config
        self._headers = headers or {}
        self._auth = auth
        self._client: httpx2.AsyncClient | None = None
        self._joined: dict[str, httpx2.URL] = {}  # path -> base_url joined with it (see build_request)

    def _real(self) -> httpx2.AsyncClient:
        if self._client is None:
            config = self._config
            from mcp_server.providers.transport import AiohttpTransport  # aiohttp loads on first use (~0.2 s)

            # No retries in the transport: the router is the one retry loop, so every attempt is counted, backed
            # off, logged and may go to a fallback instead.
            transport = AiohttpTransport(ssl_context=tls_context(), max_connections=config.max_connections)
            self._client = httpx2.AsyncClient(
                base_url=config.base_url or "",
                headers=self._headers,
                auth=self._auth,
                timeout=httpx2.Timeout(config.timeout_s, connect=config.connect_timeout_s),
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                event_hooks={"request": list(REQUEST_HOOKS)},
            )
        return self._client

    @property
    def configured_url(self) -> str:
        """base_url as the config spells it (for messages)."""
        return self._config.base_url or ""

    def build_request(self, method: str, url: str | httpx2.URL, **options: Any) -> httpx2.Request:
        """The client's own build_request, with each path ("/chat/completions") joined to base_url once. httpx2
        parses and joins both URLs again for every request: 60 of the 110 us a chat request took to build here,
        several times that when a call runs cold. Absolute URLs (a download's) pass through as they are."""
        client = self._real()
        if isinstance(url, str) and url.startswith("/"):
            joined = self._joined.get(url)
            if joined is None:
                if len(self._joined) >= MAX_JOINED_PATHS:  # ids in paths (a video job's) must not grow it
                    self._joined.clear()
                joined = self._joined[url] = client.build_request("GET", url).url
            url = joined
        return client.build_request(method, url, **options)

    def __getattr__(self, name: str) -> Any:  # only called for names this class does not define
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def build_client(
    config: ProviderConfig, headers: dict[str, str] | None = None, auth: httpx2.Auth | None = None
) -> LazyClient:
    """One pooled client per provider for the server's lifetime: per-call clients cost a TCP+TLS setup each.
    `auth` sets each request's credentials (a key from the provider's pool: providers/keys.py)."""
    return LazyClient(config, headers, auth)


def retry_after_seconds(headers: httpx2.Headers) -> float | None:
    """Retry-After in seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def read_failure(redact: Redactor, payload: Any, reason: str) -> UpstreamFailure:
    """The one way upstream failure data gets in: `payload` (a body as text, or JSON an answer carried) has every
    string in it redacted before any field is picked from it or cut, so no field can carry a secret in any form.

    The message is the OpenAI envelope's (or `{"error": "text"}`'s), else `reason` with any text body after it.
    """
    text = ""
    if isinstance(payload, str):
        text = payload = redact.head(payload, MAX_BODY_TEXT)
        with contextlib.suppress(ValueError):
            payload = json.loads(text)
    data = redact.scrub(payload)  # JSON strings once more: the text was redacted in its escaped spelling
    error = data.get("error") if isinstance(data, dict) else None
    fields: dict[str, Any] = error if isinstance(error, dict) else {}
    message = fields.get("message") if isinstance(error, dict) else error
    if message is None and isinstance(data, dict):
        message = data.get("message")
    if not isinstance(message, str):  # no envelope: the reason, then whatever text the body had
        reason = redact(reason)
        message = f"{reason} ({text[:MAX_ERROR_TEXT].strip()})" if text.strip() else reason
    return UpstreamFailure(
        message[:MAX_ERROR_TEXT], _field(fields, "type"), _field(fields, "code"), _field(fields, "param")
    )


def _field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return None if value is None else str(value)[:MAX_FIELD_TEXT]


def error_from_response(provider: str, response: httpx2.Response, redact: Redactor) -> UpstreamHTTPError:
    """An upstream's HTTP failure as its error class, built only from `read_failure`'s redacted fields (of the
    headers only the numeric Retry-After is read)."""
    failure = read_failure(redact, response.text if response.content else "", response.reason_phrase or "error")
    return http_error(provider, response.status_code, failure, retry_after_s=retry_after_seconds(response.headers))


@contextlib.asynccontextmanager
async def stream(
    client: LazyClient,
    provider: str,
    redact: Redactor,
    request: httpx2.Request,
    *,
    shown_url: str | None = None,
    refused: Callable[[httpx2.Response], GatewayError] | None = None,
    any_status: bool = False,
    follow_redirects: bool = False,
) -> AsyncIterator[httpx2.Response]:
    """The one send path of every HTTP adapter: `request` sent and the answer's head read; its body is the caller's
    to read, as it arrives.

    Every failure becomes its error class, secrets redacted. One before the head is the connection's (unreachable
    or timeout, naming `shown_url`, by default base_url). An HTTP error status (unless `any_status`) is decoded
    from its body, or worded by `refused`. One while the body is read is an interrupted answer (the upstream got
    the request and began to answer, so it is not told to check base_url), or a timeout.
    """
    url = client.configured_url if shown_url is None else shown_url
    response = await _head(client, provider, redact, request, url, refused, any_status, follow_redirects)
    try:
        yield response
    except httpx2.SSEError:
        raise  # the body's format, not the connection: the caller words it
    except httpx2.TransportError as exc:
        raise _body_error(provider, exc, response, url, redact) from None
    finally:
        await response.aclose()


async def fetch(
    client: LazyClient, provider: str, redact: Redactor, method: str, path: str, **options: Any
) -> httpx2.Response:
    """One request and its whole answer, read into memory; failures as `stream` tells them. (`stream`'s steps
    without its context manager: this is every non-streamed call's path, and the generator costs ~10 us.)"""
    url = client.configured_url
    response = await _head(client, provider, redact, client.build_request(method, path, **options), url, None, False)
    await _read_whole(provider, redact, response, url)
    return response


async def _head(
    client: LazyClient,
    provider: str,
    redact: Redactor,
    request: httpx2.Request,
    url: str,
    refused: Callable[[httpx2.Response], GatewayError] | None,
    any_status: bool,
    follow_redirects: bool = False,
) -> httpx2.Response:
    """`request` sent and its head read; an HTTP error status (unless `any_status`) raised as its error class, with
    the response closed."""
    try:
        response = await client.send(request, stream=True, follow_redirects=follow_redirects)
    except httpx2.TransportError as exc:
        raise _transport_error(provider, exc, url, redact) from None
    if response.status_code < 400 or any_status:
        return response
    await _read_whole(provider, redact, response, url)
    raise refused(response) if refused else error_from_response(provider, response, redact)


async def _read_whole(provider: str, redact: Redactor, response: httpx2.Response, url: str) -> None:
    """The answer's body read into memory, then the response closed; a failure while reading as `_body_error`."""
    try:
        await response.aread()
    except httpx2.TransportError as exc:
        raise _body_error(provider, exc, response, url, redact) from None
    finally:
        await response.aclose()


def _body_error(
    provider: str, exc: httpx2.TransportError, response: httpx2.Response, url: str, redact: Redactor
) -> GatewayError:
    """A failure while an answer's body was read: a timeout, else an interrupted answer."""
    if isinstance(exc, httpx2.TimeoutException):
        return _transport_error(provider, exc, url, redact)
    return _interrupted(provider, response)


def _interrupted(provider: str, response: httpx2.Response) -> AnswerInterrupted:
    expected = response.headers.get("content-length")
    of = f" of {expected}" if expected and expected.isdigit() else ""
    return AnswerInterrupted(
        provider,
        f"began its answer (HTTP {response.status_code}) but closed the connection after "
        f"{response.num_bytes_downloaded}{of} bytes: the answer was interrupted and is lost. Try again.",
    )


def _transport_error(provider: str, exc: httpx2.TransportError, url: str, redact: Redactor) -> GatewayError:
    """Connection failures and timeouts: say which provider and URL (redacted: a key may sit in it), never the
    raw exception.

    `request_sent` tells the router whether the upstream may have received the request (the answer was
    lost) or not (the connection never opened), which decides whether a paid submission may be sent again.
    """
    sent = not isinstance(exc, _NOT_SENT)
    url = redact(url)
    if isinstance(exc, httpx2.TimeoutException):
        detail = f"did not answer in time ({url}). Try again, or raise timeout_s in the config."
        return UpstreamTimeout(provider, detail, request_sent=sent)
    detail = f"is unreachable ({url}): {type(exc).__name__}. Check base_url and the network."
    return Unreachable(provider, detail, request_sent=sent)


# Failures that happen before any byte of the request reaches the upstream.
_NOT_SENT = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.LocalProtocolError,
    httpx2.ProxyError,
)


def malformed(provider: str, what: str) -> MalformedAnswer:
    return MalformedAnswer(provider, f"sent a malformed answer ({what}).")
