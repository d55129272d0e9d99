"""A real HTTP emulator of genroute's upstreams: ArkRoute, ARKA, ArcaneAPI, Arvae and AKI.IO.

It listens on a loopback socket (uvicorn in a background thread) so the gateway under test, in-process
or as a subprocess, talks to it exactly as it would to the real providers: same paths, bodies, auth and
error shapes. Tests script misbehaviour with `fail_next` and read back what was sent in `requests`.
Run `python -m emulator --port 0` for a standalone server (prints `READY <base_url>`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from emulator import audio, chat, media, vision

ROUTES = frozenset(
    {"chat", "models", "images", "video_submit", "video_status", "usage", "status", "aki", "aki_key", "files"}
)
ROUTES |= audio.ROUTES  # /images/edits, /audio/speech, /audio/transcriptions (emulator/audio.py)
DEFAULT_MODELS = ("gpt-5.5", "gpt-5.4", "nano-banana-2", "kling-v2-master")
# GET /v1/models lists prices: ArcaneAPI ("List available models and pricing") and ArkRoute ("Returns model IDs,
# providers, types, and pricing") say so without showing the JSON, so the emulator uses the `pricing` object of
# OpenAI-compatible routers (OpenRouter's): USD per token as decimal strings. Models not named here list none.
LISTED_PRICES: dict[str, dict[str, str]] = {
    "gpt-5.5": {"prompt": "0.00000125", "completion": "0.00001"},
    "gpt-5.4": {"prompt": "0.000001", "completion": "0.000008"},
    "gpt-4o-mini": {"prompt": "0.00000015", "completion": "0.0000006"},
}
_OWNERS = {"gpt": "openai", "nano-banana": "google", "kling": "kuaishou", "seed": "bytedance", "claude": "anthropic"}
_MALFORMED = b'{"id": "chatcmpl-'

Handler = Callable[[Request, "RecordedRequest", "Fault | None"], Awaitable[Response]]


@dataclass
class RecordedRequest:
    """One request as the emulator received it, for tests to assert on what the gateway sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # parsed body, or None when empty / not JSON
    body: bytes
    url: str
    route: str | None  # one of ROUTES, None for unknown URLs
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """One queued misbehaviour from `fail_next`; `remaining` counts down per request."""

    status: int
    body: dict[str, Any] | str | bytes | None
    headers: dict[str, str]
    remaining: int
    latency_ms: float
    malformed: bool
    cut_stream_after: int | None
    drop_connection: bool
    cut_body: bool = False


async def _close_connection(receive: Receive) -> None:
    """Close the TCP connection under this request without finishing any response.

    Only a socket close makes the client see a transport error (not an HTTP status); ASGI has no message
    for it, so reach uvicorn's h11 cycle (the bound `receive`) for its transport.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not uvicorn's h11 protocol: an exception mid-response also aborts the socket
        raise RuntimeError("emulator: dropping the connection")
    transport.close()
    for _ in range(200):  # let connection_lost run, or uvicorn logs an 'incomplete response' error
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


class _Drop(Response):
    """Answer nothing at all: the socket closes right after the request body was read."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _close_connection(receive)


class _SSE(StreamingResponse):
    """A text/event-stream that ends normally, or closes the socket mid-body when `cut()` says so at its end."""

    def __init__(self, events: AsyncIterator[bytes], *, cut: Callable[[], bool], on_abort: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        self.events, self.cut, self.on_abort = events, cut, on_abort

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        cycle = getattr(receive, "__self__", None)
        async for event in self.events:
            if getattr(cycle, "disconnected", False):  # the client went away mid-stream: stop generating
                self.on_abort()
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if self.cut():
            await _close_connection(receive)
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class _HalfBody(Response):
    """An answer announced in full (status, headers, Content-Length) whose body stops halfway: the socket closes."""

    def __init__(self, answer: Response) -> None:
        super().__init__(status_code=answer.status_code)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.answer.body)
        start = {"type": "http.response.start", "status": self.answer.status_code, "headers": self.answer.raw_headers}
        await send(start)
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await _close_connection(receive)


def _owner(model_id: str) -> str:
    return next((owner for prefix, owner in _OWNERS.items() if model_id.startswith(prefix)), "emulator")


def _printable(value: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in value)


class Emulator:
    """The fake upstreams. Every attribute below is a knob tests may set between requests."""

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        latency_ms: float = 0.0,
        reply: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._defaults: dict[str, Any] = {"api_key": api_key, "latency_ms": latency_ms, "reply": reply}
        self.host, self.port = host, port
        self.requests: list[RecordedRequest] = []
        self.idempotency_keys: list[str | None] = []  # one per POST /v1/images/generations, in order
        self.video_idempotency_keys: list[str | None] = []  # one per POST /v1/video/generations, in order
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._app = self._build_app()
        self.reset()

    # ----- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the constructor's state: no requests, faults, tasks, files or usage; default knobs."""
        self.api_key: str | None = self._defaults["api_key"]
        # More bearer keys: None is accepted like api_key; a status (401, 402, 429) is what that key is answered
        self.other_keys: dict[str, int | None] = {}
        self.latency_ms: float = self._defaults["latency_ms"]
        self.reply: str | None = self._defaults["reply"]
        self.echo_secrets = False  # errors repeat the credential they got (see _echo) in...
        self.echo_field = "message"  # ...this field of the error object ("message" appends to it)
        self.echo_header = "x-debug-echo"  # ...and this response header
        self.known_models: set[str] | None = None
        self.model_prices: dict[str, dict[str, Any]] = dict(LISTED_PRICES)  # id -> its listing's `pricing`
        self.known_aki_endpoints: set[str] | None = None
        self.models_need_key = False  # True: GET /models checks the key, as OpenAI's does (ArkRoute's is public)
        self.stream_chunk_delay_ms = 0.0
        self.video_run_s = 2.0
        self.video_file: tuple[bytes, str] = (media.MP4, "video/mp4")  # what a finished video job's URL serves
        self.video_fail: str | None = None
        self.video_retry_after_s: float | None = None
        self.tokens_included = 3_000_000
        self.overage_cost_per_1k = 0.01
        self.max_recorded: int | None = self._defaults.get("max_recorded")  # None keeps every request
        self.image_submissions = 0
        self.aborted_streams = 0  # chat streams the client abandoned before the end (cancellation)
        self.video_submissions = 0
        with self._lock:
            self.requests.clear()
            self.idempotency_keys.clear()
            self.video_idempotency_keys.clear()
            self._faults: dict[str, deque[Fault]] = {route: deque() for route in ROUTES}
            self._tasks: dict[str, media.VideoTask] = {}
            self._files: dict[str, tuple[bytes, str]] = {}
            self._usage: dict[tuple[date, str], int] = defaultdict(int)

    def fail_next(
        self,
        route: str,
        *,
        status: int = 500,
        body: dict[str, Any] | str | bytes | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        latency_ms: float = 0,
        malformed: bool = False,
        cut_stream_after: int | None = None,
        drop_connection: bool = False,
        cut_body: bool = False,
    ) -> None:
        """Make the next `times` requests to `route` misbehave; queued faults are consumed in order.

        Precedence: drop_connection, malformed, cut_stream_after (chat streams; other requests are
        dropped), then status/body. A 2xx status with no body only adds latency and headers to the
        normal answer. Faults apply before auth, so the faulted request needs no valid key.
        `cut_body` (with a 2xx status) sends the normal answer's status, headers (its full Content-Length) and the first
        half of its body, then closes the socket (not for event streams).
        """
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTES)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        fault = Fault(
            status, body, dict(headers or {}), times, latency_ms, malformed, cut_stream_after, drop_connection, cut_body
        )
        with self._lock:
            self._faults[route].append(fault)

    def _stream_aborted(self) -> None:
        with self._lock:
            self.aborted_streams += 1

    def calls(self, route: str) -> list[RecordedRequest]:
        """The recorded requests that hit `route`."""
        return [r for r in list(self.requests) if r.route == route]

    def _take_fault(self, route: str | None) -> Fault | None:
        if route is None:
            return None
        with self._lock:
            queue = self._faults[route]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    # ----- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.base_url + "/v1"

    def start(self) -> Emulator:
        """Bind, serve in a daemon thread, and return once the socket accepts (RuntimeError after 10 s)."""
        if self._thread is not None:
            return self
        # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # says TCP, and without it every answer stalls ~40 ms (Nagle vs delayed ACK on headers + body)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=60,  # longer than client pools keep idle sockets: no close-while-reused races
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        name = f"emulator-{self.port}"
        self._thread = threading.Thread(target=self._run, args=(server, sock), name=name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator did not start listening on {self.base_url} within 10 s")
            time.sleep(0.005)
        with socket.create_connection((self.host, self.port), timeout=2):
            pass
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving; in-flight latency sleeps end at once so shutdown does not wait for them."""
        server, thread, loop, stopping = self._server, self._thread, self._loop, self._stopping
        if server is None or thread is None:
            return
        server.should_exit = True
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # loop closed between the check and the call
                pass
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        self._server = self._thread = self._loop = self._stopping = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _sleep(self, seconds: float) -> None:
        """asyncio sleep that `stop()` cuts short."""
        if seconds <= 0:
            return
        if self._stopping is None:
            await asyncio.sleep(seconds)
            return
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    # ----- dispatch --------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        bearer, aki, open_ = "bearer", "aki", "none"
        routes: list[Route] = []
        for prefix in ("/v1", "/api/v1"):  # /api/v1 is Arvae's spelling of the same API
            routes += [
                Route(f"{prefix}/chat/completions", self._wrap("chat", bearer, self._chat), methods=["POST"]),
                Route(f"{prefix}/models", self._wrap("models", "models", self._models), methods=["GET"]),
                Route(f"{prefix}/status", self._wrap("status", bearer, self._status), methods=["GET"]),
                Route(f"{prefix}/usage", self._wrap("usage", bearer, self._usage_route), methods=["GET"]),
                Route(f"{prefix}/images/generations", self._wrap("images", bearer, self._images), methods=["POST"]),
                Route(
                    f"{prefix}/video/generations",
                    self._wrap("video_submit", bearer, self._video_submit),
                    methods=["POST"],
                ),
                Route(
                    prefix + "/video/status/{task_id}",
                    self._wrap("video_status", bearer, self._video_status),
                    methods=["GET"],
                ),
                *audio.routes(self, prefix, bearer),
            ]
        routes += [
            Route("/api/call/{endpoint}", self._wrap("aki", aki, self._aki), methods=["POST"]),
            Route("/api/validate_key", self._wrap("aki_key", open_, self._aki_validate_key), methods=["GET"]),
            Route("/files/{name}", self._wrap("files", open_, self._file), methods=["GET"]),
            Route("/{path:path}", self._wrap(None, open_, self._unknown), methods=["GET", "POST", "PUT", "DELETE"]),
        ]
        return Starlette(routes=routes)

    def _wrap(self, route: str | None, auth: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Record, apply latency and faults, check auth, then run the route's handler."""

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            rec = RecordedRequest(
                request.method,
                request.url.path,
                dict(request.query_params),
                dict(request.headers),
                parsed,
                raw,
                str(request.url),
                route,
            )
            self._record(rec)
            fault = self._take_fault(route)
            await self._sleep((self.latency_ms + (fault.latency_ms if fault else 0)) / 1000)
            if self._is_stopping():  # the upstream went away mid-request: the client sees the socket close
                return _Drop()
            if fault is not None:
                faulted = self._fault_response(fault, rec)
                if faulted is not None:
                    return faulted
            try:
                bearer_needed = auth == "bearer" or (auth == "models" and self.models_need_key)
                if bearer_needed and self.api_key is not None:
                    scheme, _, token = rec.headers.get("authorization", "").partition(" ")
                    token = token.strip()
                    refused = self.other_keys.get(token, 401) if token != self.api_key else None
                    if scheme.lower() != "bearer" or refused == 401:
                        raise chat.Invalid(None, "Invalid API key provided", status=401, code="invalid_api_key")
                    if refused is not None:
                        raise chat.Invalid(None, f"This key is refused ({refused})", status=refused, code=None)
                if auth == "aki" and self.api_key is not None:
                    key = parsed.get("key") if isinstance(parsed, dict) else None
                    if key != self.api_key:
                        raise chat.Invalid("key", "Invalid API key", status=401)
                response = await handler(request, rec, fault)
            except chat.Invalid as exc:
                if route == "aki":
                    return self._error_response(rec, exc.status, chat.aki_error(exc.message))
                body = chat.envelope(exc.status, exc.message, param=exc.param, code=exc.code, type=exc.type)
                return self._error_response(rec, exc.status, body)
            if fault is not None:
                response.headers.update(fault.headers)
                if fault.cut_body and not isinstance(response, StreamingResponse):
                    return _HalfBody(response)
            return response

        return endpoint

    def _current(self, rec: RecordedRequest) -> int:
        """1 when `rec` arrived since the last reset, else 0: a request a previous test left in flight (a fault's
        latency outlasting the test) is answered but not counted against the next test."""
        return int(any(r is rec for r in reversed(self.requests)))

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
            if rec.route == "images":
                self.idempotency_keys.append(rec.headers.get("idempotency-key"))
            elif rec.route == "video_submit":
                self.video_idempotency_keys.append(rec.headers.get("idempotency-key"))
            limit = self.max_recorded
            if limit is not None and len(self.requests) > 2 * limit:  # trim in batches: list head deletes are O(n)
                del self.requests[: len(self.requests) - limit]

    def _fault_response(self, fault: Fault, rec: RecordedRequest) -> Response | None:
        """The faulted answer, or None when the request should go on to its handler."""
        if fault.drop_connection:
            return _Drop()
        if fault.malformed:
            return Response(_MALFORMED, 200, headers=fault.headers, media_type="application/json")
        if fault.cut_stream_after is not None:
            is_stream = rec.route == "chat" and isinstance(rec.json, dict) and rec.json.get("stream") is True
            return None if is_stream else _Drop()
        body = fault.body
        if body is None and 200 <= fault.status < 300:
            return None
        if body is None:
            body = chat.aki_error("Internal error") if rec.route == "aki" else chat.envelope(fault.status)
        if isinstance(body, dict):
            return self._error_response(rec, fault.status, body, fault.headers)
        if isinstance(body, str) and self.echo_secrets and fault.status >= 400:
            body = f"{body} ({self._echo(rec)})"
        response = Response(
            body,
            fault.status,
            headers=fault.headers,
            media_type="text/plain; charset=utf-8" if isinstance(body, str) else "application/octet-stream",
        )
        if self.echo_secrets and fault.status >= 400:
            response.headers[self.echo_header] = self._echo(rec)
        return response

    def _echo(self, rec: RecordedRequest) -> str:
        """What a leaky upstream would repeat back: the credential it got as sent, bare, URL-encoded and inside
        a URL, and the full request URL."""
        key = rec.json.get("key") if rec.route == "aki" and isinstance(rec.json, dict) else None
        secret = key if isinstance(key, str) else rec.headers.get("authorization", "")
        bare = secret[7:] if secret.lower().startswith("bearer ") else secret
        encoded = quote(bare, safe="")
        return _printable(f"authorization={secret} key={bare} encoded={encoded} url={rec.url}?api_key={encoded}")

    def _poison(self, rec: RecordedRequest, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """`body` (a copy) and `headers` with the echo in `echo_field` of its error and in `echo_header`."""
        echo = self._echo(rec)
        headers[self.echo_header] = echo
        body = json.loads(json.dumps(body))  # never mutate a body a test handed in
        inner = body.get("error")
        if isinstance(inner, dict):
            target, field = inner, self.echo_field
        else:  # AKI.IO's {"success": false, "error": "..."}: its message is "error"
            target, field = body, "error" if self.echo_field == "message" else self.echo_field
        target[field] = f"{target.get(field) or ''} ({echo})" if field in ("message", "error") else echo
        return body

    def _error_response(
        self, rec: RecordedRequest, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        """JSON error answer; in `echo_secrets` mode its message and an x-debug-echo header leak the secrets."""
        headers = dict(headers or {})
        if self.echo_secrets and (status >= 400 or body.get("success") is False):
            body = self._poison(rec, body, headers)
        return JSONResponse(body, status, headers=headers)

    def _check_model(self, model: str) -> None:
        if self.known_models is not None and model not in self.known_models:
            raise chat.Invalid(
                "model",
                f"The model `{model}` does not exist or you do not have access to it.",
                status=404,
                code="model_not_found",
            )

    # ----- OpenAI-compatible text routes ------------------------------------------------------------

    async def _chat(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        call = chat.parse_chat(rec.json)
        self._check_model(call.model)
        answer = self.reply if self.reply is not None else "echo: " + call.last_user
        special = vision.reply(rec.json, call.last_user) if self.reply is None else None  # images, JSON, tools
        answer = special.text if special is not None else answer
        answer, cut = chat.truncate(answer, call.max_tokens)
        finish = "length" if cut else "stop"
        seen = len(special.images) * vision.IMAGE_TOKENS if special is not None else 0
        use = chat.usage(call.prompt_words + seen, answer)
        with self._lock:
            self._usage[(datetime.now(UTC).date(), call.model)] += use["total_tokens"]
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if special is not None and special.tool_calls:
            if not call.stream:
                return vision.tool_call_completion(cid, created, call.model, special, use)
            events = vision.tool_call_events(cid, created, call.model, special, use, call.include_usage)
            return _SSE(events, cut=self._is_stopping, on_abort=self._stream_aborted)
        if not call.stream:
            return JSONResponse(chat.completion(cid, created, call.model, answer, finish, use))
        cut_after = fault.cut_stream_after if fault is not None else None
        events = self._chat_events(cid, created, call, answer, finish, use, cut_after)
        return _SSE(events, cut=lambda: cut_after is not None or self._is_stopping(), on_abort=self._stream_aborted)

    async def _chat_events(
        self,
        cid: str,
        created: int,
        call: chat.ChatCall,
        answer: str,
        finish: str,
        use: dict[str, int],
        cut_after: int | None,
    ) -> AsyncIterator[bytes]:
        """Role on the first delta, one word per chunk, then finish_reason, usage (if asked) and [DONE]."""
        words = chat.pieces(answer) or [""]
        if cut_after is not None:
            words = words[:cut_after]
        extra = {"with_usage": call.include_usage}
        for i, word in enumerate(words):
            if i:
                await self._sleep(self.stream_chunk_delay_ms / 1000)
            if self._is_stopping():
                return
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
            yield chat.chunk(cid, created, call.model, delta, **extra)
        if cut_after is not None:
            return
        await self._sleep(self.stream_chunk_delay_ms / 1000)
        if self._is_stopping():
            return
        yield chat.chunk(cid, created, call.model, {}, finish, **extra)
        if call.include_usage:
            yield chat.chunk(cid, created, call.model, None, use=use, with_usage=True)
        yield chat.DONE

    async def _models(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        ids = sorted(self.known_models) if self.known_models is not None else list(DEFAULT_MODELS)
        data = [{"id": mid, "object": "model", "created": 1_700_000_000, "owned_by": _owner(mid)} for mid in ids]
        for item in data:
            if item["id"] in self.model_prices:
                item["pricing"] = self.model_prices[item["id"]]
        return JSONResponse({"object": "list", "data": data})

    async def _status(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        return JSONResponse({"status": "ok"})

    async def _usage_route(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        begin, end = chat.period(rec.query.get("start_date"), rec.query.get("end_date"), datetime.now(UTC).date())
        by_model: dict[str, int] = defaultdict(int)
        with self._lock:
            for (day, model), tokens in self._usage.items():
                if begin <= day <= end:
                    by_model[model] += tokens
        return JSONResponse(chat.usage_report(begin, end, by_model, self.tokens_included, self.overage_cost_per_1k))

    async def _unknown(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        message = f"Unknown request URL: {rec.method} {rec.path}."
        raise chat.Invalid(None, message, status=404, code="unknown_url")

    # ----- AKI.IO native ---------------------------------------------------------------------------

    async def _aki(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        endpoint = request.path_params["endpoint"]
        if self.known_aki_endpoints is not None and endpoint not in self.known_aki_endpoints:
            raise chat.Invalid(None, "Endpoint not found", status=404)
        body = rec.json if isinstance(rec.json, dict) else {}
        prompt = body.get("prompt_input")
        if not isinstance(prompt, str):
            raise chat.Invalid("prompt_input", "Missing or invalid parameter: prompt_input (string)")
        limit = body.get("max_gen_tokens")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise chat.Invalid("max_gen_tokens", "Invalid parameter: max_gen_tokens (integer >= 1)")
        lines = prompt.splitlines()
        answer = self.reply if self.reply is not None else "echo: " + (lines[-1] if lines else "")
        answer, _ = chat.truncate(answer, limit)
        return JSONResponse(chat.aki_result(endpoint, prompt, answer))

    async def _aki_validate_key(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        """AKI.IO's key check (GET /api/validate_key?key=...&version=..., as its client library calls it)."""
        if self.api_key is not None and rec.query.get("key") != self.api_key:
            return JSONResponse({"success": False, "error": "Invalid API key"}, 401)
        return JSONResponse({"success": True, "error": None})

    # ----- ArkRoute media --------------------------------------------------------------------------

    async def _reference_image(self, body: dict[str, Any]) -> None:
        image = body.get("image")
        if image is None:
            return
        if not isinstance(image, str):
            raise chat.Invalid("image", "Invalid 'image': expected a base64-encoded image string.")
        try:
            await asyncio.to_thread(media.decode_image_b64, image)
        except ValueError as exc:
            raise chat.Invalid("image", str(exc)) from None

    async def _images(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        body = chat.require_object(rec.json)
        model, prompt = chat.require_str(body, "model"), chat.require_str(body, "prompt")
        self._check_model(model)
        n = body.get("n", 1)
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
            raise chat.Invalid("n", f"Invalid 'n': expected an integer from 1 to 10, got {json.dumps(n)}.")
        size = body.get("size") or "1024x1024"
        try:
            width, height = media.parse_size(size if isinstance(size, str) else repr(size))
        except ValueError as exc:
            raise chat.Invalid("size", str(exc)) from None
        fmt = body.get("response_format") or "url"
        if fmt not in ("url", "b64_json"):
            raise chat.Invalid("response_format", "Invalid 'response_format': expected 'url' or 'b64_json'.")
        await self._reference_image(body)
        kind = media.image_kind(prompt)  # what the prompt asks for: a photo, fine detail, or the default picture
        if fmt == "b64_json":
            b64 = await asyncio.to_thread(media.kind_png_b64, kind, width, height)
            data = [{"b64_json": b64, "revised_prompt": prompt} for _ in range(n)]
        else:
            png = await asyncio.to_thread(media.kind_png_bytes, kind, width, height)
            names = [f"{uuid.uuid4().hex}.png" for _ in range(n)]
            with self._lock:
                self._files.update((name, (png, "image/png")) for name in names)
            data = [{"url": f"{self.base_url}/files/{name}", "revised_prompt": prompt} for name in names]
        self.image_submissions += self._current(rec)
        return JSONResponse({"created": int(time.time()), "data": data})

    async def _video_submit(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        body = chat.require_object(rec.json)
        model, _ = chat.require_str(body, "model"), chat.require_str(body, "prompt")
        self._check_model(model)
        duration = body.get("duration")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)):
            raise chat.Invalid("duration", "Invalid 'duration': expected a number of seconds (5 or 10).")
        if duration is not None and not 0 < duration <= 60:
            raise chat.Invalid("duration", "Invalid 'duration': expected a number of seconds (5 or 10).")
        ratio = body.get("aspect_ratio")
        if ratio is not None and not (isinstance(ratio, str) and media.valid_aspect_ratio(ratio)):
            raise chat.Invalid("aspect_ratio", "Invalid 'aspect_ratio': expected e.g. '16:9', '9:16' or '1:1'.")
        await self._reference_image(body)
        task = media.VideoTask(
            str(uuid.uuid4()), model, float(duration or 5.0), float(self.video_run_s), time.monotonic()
        )
        with self._lock:
            self._tasks[task.task_id] = task
            self.video_submissions += self._current(rec)
        return JSONResponse({"task_id": task.task_id, "status": "processing", "model": model})

    async def _video_status(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        task_id = request.path_params["task_id"]
        now = time.monotonic()
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise chat.Invalid("task_id", f"Task '{task_id}' not found.", status=404, code="task_not_found")
            if not task.finished and task.due(now):
                # the outcome is fixed when first seen finished, so video_fail set after submission still counts
                task.finished, task.error = True, self.video_fail
                if task.error is None:
                    self._files[f"{task.task_id}.mp4"] = self.video_file
        headers: dict[str, str] = {}
        if not task.finished and self.video_retry_after_s is not None:
            headers["retry-after"] = f"{self.video_retry_after_s:g}"
        body = task.body(now, self.base_url)
        if self.echo_secrets and task.error is not None:
            body = self._poison(rec, body, headers)
        return JSONResponse(body, headers=headers)

    async def _file(self, request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
        name = request.path_params["name"]
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            raise chat.Invalid(None, f"File '{name}' not found.", status=404, code="not_found")
        return Response(stored[0], media_type=stored[1])


def main(argv: list[str] | None = None) -> int:
    """Standalone server for benchmarks and manual runs; prints `READY <base_url>` once it accepts."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--no-auth", action="store_true", help="accept any key")
    parser.add_argument("--reply", default=None, help="fixed answer text instead of the echo")
    parser.add_argument("--max-recorded", type=int, default=1000, help="bound the request log (memory)")
    args = parser.parse_args(argv)
    emulator = Emulator(
        api_key=None if args.no_auth else args.api_key,
        latency_ms=args.latency_ms,
        reply=args.reply,
        host=args.host,
        port=args.port,
    )
    emulator._defaults["max_recorded"] = args.max_recorded
    emulator.max_recorded = args.max_recorded
    emulator.start()
    print(f"READY {emulator.base_url}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.1):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
