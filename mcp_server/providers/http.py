"""What every HTTP adapter shares: the pooled client, and upstream failures decoded with every secret redacted."""

from __future__ import annotations

import concurrent.futures
import contextlib
import email.utils
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import httpx2

from mcp_server.config import ProviderConfig
from mcp_server.errors import GatewayError, upstream_error
from mcp_server.providers.redact import Redactor

MAX_ERROR_TEXT = 500
MAX_BODY_TEXT = 64_000  # of an error body, read for its fields (the rest is never looked at)
MAX_FIELD_TEXT = 200  # an upstream error's type, code or param
# Idle connections kept open per provider. httpcore probes every idle connection's socket on every request
# it starts and ends (O(idle) work per call: about 2 ms a call with 100 idle), so keep a small warm set;
# bursts above it still open up to max_connections and close the surplus when they end.
MAX_KEEPALIVE = 16
# httpx2 request hooks every provider client runs (observability/tracing.py adds the one that sends `traceparent`
# when traces are on); empty otherwise, so a request pays nothing for them
REQUEST_HOOKS: list[Callable[[httpx2.Request], Awaitable[None]]] = []


_tls_lock = threading.Lock()
_tls: concurrent.futures.Future[ssl.SSLContext] | None = None


def prepare_tls_context() -> None:
    """Start building the TLS context all provider clients share, in a low-priority background thread.

    Building one loads the system CA store (60-100 ms of CPU, mostly outside the GIL). Started while the
    SDK is imported, it is ready long before the first upstream call, and it never delays `initialize`:
    provider clients are built lazily (see `LazyClient`), so nothing waits for it at start.
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
            future.set_result(httpx2.create_ssl_context(trust_env=False))
        except BaseException as exc:  # surfaces in tls_context(), on the caller's thread
            future.set_exception(exc)

    threading.Thread(target=build, name="genroute-tls-context", daemon=True).start()


def tls_context() -> ssl.SSLContext:
    """The shared TLS context (certificate checks on, as httpx2's default), built once per process."""
    prepare_tls_context()
    assert _tls is not None
    return _tls.result(timeout=60)


class LazyClient:
    """A provider's pooled httpx2 client, built on first use and then reused for the server's lifetime.

    Attribute access is passed to the real client, so adapters use it as an `httpx2.AsyncClient`.
    Building it needs the shared TLS context; deferring it keeps that off the way to `initialize`.
    """

    def __init__(self, config: ProviderConfig, headers: dict[str, str] | None = None) -> None:
        self._config = config
        self._headers = headers or {}
        self._client: httpx2.AsyncClient | None = None

    def _real(self) -> httpx2.AsyncClient:
        if self._client is None:
            config = self._config
            limits = httpx2.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=min(config.max_connections, MAX_KEEPALIVE),
            )
            # retries=0, on purpose: the router is the one retry loop, so every attempt is counted, backed
            # off, logged and may go to a fallback instead.
            transport = httpx2.AsyncHTTPTransport(retries=0, limits=limits, trust_env=False, verify=tls_context())
            self._client = httpx2.AsyncClient(
                base_url=config.base_url or "",
                headers=self._headers,
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

    def __getattr__(self, name: str) -> Any:  # only called for names this class does not define
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def build_client(config: ProviderConfig, headers: dict[str, str] | None = None) -> LazyClient:
    """One pooled client per provider for the server's lifetime: per-call clients cost a TCP+TLS setup each."""
    return LazyClient(config, headers)


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


class UpstreamFailure(NamedTuple):
    """An upstream's own account of a failure, every field already redacted: what an error is built from."""

    message: str
    type: str | None
    code: str | None
    param: str | None


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


def error_from_response(provider: str, response: httpx2.Response, redact: Redactor) -> GatewayError:
    """An upstream's HTTP failure as a GatewayError, built only from `read_failure`'s redacted fields (of the
    headers only the numeric Retry-After is read)."""
    status = response.status_code
    failure = read_failure(redact, response.text if response.content else "", response.reason_phrase or "error")
    balance = status in (402, 403) and mentions_balance(failure.message, failure.type, failure.code)
    return upstream_error(
        provider,
        status,
        failure.message + _status_hint(status, balance),
        type=failure.type or ("insufficient_quota" if balance else _status_type(status)),
        code=failure.code,
        param=failure.param,
        retry_after_s=retry_after_seconds(response.headers),
    )


def _status_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status == 402:
        return "insufficient_quota"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "upstream_error"
    return "invalid_request_error"


_BALANCE = re.compile(r"(?i)balance|credit|insufficient|quota|billing|payment|funds")


def mentions_balance(*texts: str | None) -> bool:
    """True when an upstream's own words (message, type or code) are about money, as ArcaneAPI's 403 is."""
    return any(text and _BALANCE.search(text) for text in texts)


def _status_hint(status: int, balance: bool = False) -> str:
    if status == 401:
        return " Check the provider's API key environment variable."
    if status == 402 or balance:
        return " Check the account's balance with the provider."
    if status == 403:
        return " Check the key's permissions with the provider."
    if status == 429:
        return " The provider is rate limiting: wait and try again."
    return ""


async def fetch(
    client: LazyClient, provider: str, redact: Redactor, method: str, path: str, **options: Any
) -> httpx2.Response:
    """One request and its whole answer, read into memory; an HTTP error status is decoded into its error.

    The answer's head and body are read apart so a failure says what happened: one before the head is the
    connection's (unreachable, timeout), one in the middle of the body is an interrupted answer (the upstream
    got the request and began to answer, so it is not told to check base_url).
    """
    try:
        response = await client.send(client.build_request(method, path, **options), stream=True)
    except httpx2.TransportError as exc:
        raise transport_error(provider, exc, client.configured_url, redact) from None
    try:
        await response.aread()
    except httpx2.TimeoutException as exc:
        raise transport_error(provider, exc, client.configured_url, redact) from None
    except httpx2.TransportError:
        raise _interrupted(provider, response) from None
    finally:
        await response.aclose()
    if response.status_code >= 400:
        raise error_from_response(provider, response, redact)
    return response


def _interrupted(provider: str, response: httpx2.Response) -> GatewayError:
    expected = response.headers.get("content-length")
    of = f" of {expected}" if expected and expected.isdigit() else ""
    return GatewayError(
        f"Provider '{provider}' began its answer (HTTP {response.status_code}) but closed the connection after "
        f"{response.num_bytes_downloaded}{of} bytes: the answer was interrupted and is lost. Try again.",
        type="upstream_error",
        code="answer_interrupted",
        status=502,
        request_sent=True,
    )


def transport_error(provider: str, exc: httpx2.TransportError, url: str, redact: Redactor) -> GatewayError:
    """Connection failures and timeouts: say which provider and URL (redacted: a key may sit in it), never the
    raw exception.

    `request_sent` tells the router whether the upstream may have received the request (the answer was
    lost) or not (the connection never opened), which decides whether a paid submission may be sent again.
    """
    sent = not isinstance(exc, _NOT_SENT)
    url = redact(url)
    if isinstance(exc, httpx2.TimeoutException):
        return GatewayError(
            f"Provider '{provider}' did not answer in time ({url}). Try again, or raise timeout_s in the config.",
            type="timeout",
            code="upstream_timeout",
            status=504,
            request_sent=sent,
        )
    return GatewayError(
        f"Provider '{provider}' is unreachable ({url}): {type(exc).__name__}. Check base_url and the network.",
        type="connection_error",
        code="upstream_unreachable",
        status=502,
        request_sent=sent,
    )


# Failures that happen before any byte of the request reaches the upstream.
_NOT_SENT = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.LocalProtocolError,
    httpx2.ProxyError,
)


def malformed(provider: str, what: str) -> GatewayError:
    return GatewayError(
        f"Provider '{provider}' sent a malformed answer ({what}).",
        type="upstream_error",
        code="malformed_response",
        status=502,
    )
