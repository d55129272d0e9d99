"""What every HTTP adapter shares: the pooled client, upstream error decoding, secret redaction."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import email.utils
import json
import os
import re
import ssl
import threading
import time
from typing import Any

import httpx2

from mcp_server.config import ProviderConfig
from mcp_server.errors import GatewayError, upstream_error

_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
MAX_ERROR_TEXT = 500
# Idle connections kept open per provider. httpcore probes every idle connection's socket on every request
# it starts and ends (O(idle) work per call: about 2 ms a call with 100 idle), so keep a small warm set;
# bursts above it still open up to max_connections and close the surplus when they end.
MAX_KEEPALIVE = 16


# At exit, OpenSSL frees its global tables (libcrypto's own C atexit handler). A process that exited while the
# thread below was still loading the CA store (outside the GIL, at low priority on a busy machine) crashed with
# SIGSEGV (core dumps: that thread in X509_STORE_load_file_ex, the main thread in OPENSSL_cleanup), e.g. on a busy
# port or a failed start. Python's atexit handlers run before the C library's: the thread is waited for there.
TLS_EXIT_WAIT_S = 10.0
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
    atexit.register(concurrent.futures.wait, [future], timeout=TLS_EXIT_WAIT_S)


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
            )
        return self._client

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


class Redactor:
    """Removes a provider's key (and any bearer token) from text that came from upstream."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _BEARER.sub("Bearer [redacted]", text)


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


def error_from_response(provider: str, response: httpx2.Response, redact: Redactor) -> GatewayError:
    """Decode an upstream failure: the OpenAI envelope when present, any other body as clear text."""
    status = response.status_code
    retry_after = retry_after_seconds(response.headers)
    body_text = response.text[:4000] if response.content else ""
    message, type_, code, param = _parse_envelope(body_text)
    if message is None:
        message = (
            f"{response.reason_phrase or 'error'} ({body_text[:MAX_ERROR_TEXT].strip()})"
            if body_text.strip()
            else response.reason_phrase or "error"
        )
    balance = status in (402, 403) and mentions_balance(message, type_, code)
    hint = _status_hint(status, balance)
    return upstream_error(
        provider,
        status,
        redact(message)[:MAX_ERROR_TEXT] + hint,
        type=type_ or ("insufficient_quota" if balance else _status_type(status)),
        code=code,
        param=param,
        retry_after_s=retry_after,
    )


def _parse_envelope(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return None, None, None, None
    if not isinstance(data, dict):
        return None, None, None, None
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"], _opt_str(error.get("type")), _opt_str(error.get("code")), _opt_str(error.get("param"))
    if isinstance(error, str):  # AKI.IO and some gateways: {"error": "text"}
        return error, None, None, None
    if isinstance(data.get("message"), str):
        return data["message"], None, None, None
    return None, None, None, None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


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


def transport_error(provider: str, exc: httpx2.TransportError, url: str) -> GatewayError:
    """Connection failures and timeouts: say which provider and URL, never the raw exception.

    `request_sent` tells the router whether the upstream may have received the request (the answer was
    lost) or not (the connection never opened), which decides whether a paid submission may be sent again.
    """
    sent = not isinstance(exc, _NOT_SENT)
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
