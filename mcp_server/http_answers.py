"""How a POST to /mcp is answered: one JSON body unless it streams, kept alive when it runs long, and cancelled
when its client leaves.

The spec lets a server answer each request with one JSON body or an SSE stream. The SDK decides once per server:
SSE on 2025-11-25 sessions; on 2026-07-28 requests a task group (the handler, a disconnect watcher, a memory
stream and a deferral timer) that answers JSON only when the handler is done within 15 s. That machinery cost
~0.7 ms of server CPU a call here (~0.9 ms the SSE answer of a 2025 session). genroute answers JSON from the
request's own task instead, and keeps what the machinery is for:
- progress: a request with `_meta.progressToken` (a streamed chat) is answered the SDK's way, on SSE; so is
  whatever the SDK streams of its own accord (a 2026-07-28 `subscriptions/listen`): it is left as it is;
- long calls: with no answer after `[http] keepalive_s`, the response becomes an SSE stream with a comment line
  every keepalive_s, so a proxy's idle-read timeout does not cut it; the answer is its one event;
- a client that leaves: from WATCH_AFTER_S on, its disconnect cancels the call (recorded as cancelled). A call
  abandoned sooner runs to its end, at most WATCH_AFTER_S more of the upstream's time, and is recorded as usual.
Safe because progress is the only message genroute sends on a request's stream: no log notifications, sampling or
elicitation (a JSON body carries only the answer). JSON is chosen only for clients that accept SSE too, so the
SDK's Accept rule for an SSE answer (both types) still decides who is refused with 406.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.sdk_internals import json_answers
from mcp_server.usage.held_writes import HELD_WRITES, HeldWrites

log = logging.getLogger("genroute.http")

WATCH_AFTER_S = 1.0  # a disconnect is watched for from this long into a call (a watcher is a task: not per call)
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each line on, do not buffer the stream
]
PING = b": ping\r\n\r\n"

Handle = Callable[[Scope, Receive, Send], Awaitable[None]]


def answering(keepalive_s: float) -> Callable[[Handle], ASGIApp]:
    """Wrap the SDK's handling of /mcp requests (sdk_internals.answer_requests_with): see the module docstring."""

    def wrap(handle: Handle) -> ASGIApp:
        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] != "POST" or not accepts_sse(scope):
                await handle(scope, receive, send)  # the SDK's own answer (and its 405 / 406)
                return
            first = await receive()  # the SDK's body limit has read the whole body: one message
            body = first.get("body", b"") if first["type"] == "http.request" else b""
            replay = _replaying(first, receive)
            if asks_for_progress(body):
                await handle(scope, replay, send)
                return
            with json_answers():
                await LongAnswer(receive, send, keepalive_s).run(handle, scope, replay)

        return answer

    return wrap


class LongAnswer:
    """One request answered as JSON in its own task; past WATCH_AFTER_S a `minder` task watches for the client
    leaving, and past keepalive_s commits the SSE stream and pings it until the answer comes."""

    def __init__(self, receive: Receive, send: Send, keepalive_s: float) -> None:
        self._receive = receive
        self._send = send
        self.keepalive_s = keepalive_s
        self.cancel_scope = anyio.CancelScope()
        self.minder: asyncio.Task[None] | None = None
        self.answering = False  # the app has begun its own answer (a listen stream does at once): leave it be
        self.streaming = False  # the SSE stream is committed: the answer goes out as its event
        self.answer = bytearray()

    async def run(self, handle: Handle, scope: Scope, receive: Receive) -> None:
        timer = asyncio.get_running_loop().call_later(min(WATCH_AFTER_S, self.keepalive_s), self._start_minding)
        held = HeldWrites()
        token = HELD_WRITES.set(held)
        try:
            with self.cancel_scope:
                await handle(scope, receive, self.send)
        finally:
            HELD_WRITES.reset(token)
            timer.cancel()
            await self._stop_minding()
            await held.release()  # the ledger writes of this call, now that its answer is out

    def _start_minding(self) -> None:
        if not self.answering:
            self.minder = asyncio.get_running_loop().create_task(self._mind())

    async def _mind(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_disconnect)
            await anyio.sleep(max(self.keepalive_s - WATCH_AFTER_S, 0))
            self.streaming = True  # set first: the start is sent without yielding
            await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            while True:  # until the answer stops this task (or the client leaves)
                await self._send({"type": "http.response.body", "body": PING, "more_body": True})
                await anyio.sleep(self.keepalive_s)

    async def _watch_disconnect(self) -> None:
        # The body has been read: the server's next message is http.disconnect, when the client goes
        while (await self._receive())["type"] != "http.disconnect":
            pass  # pragma: no cover - nothing else comes after the body
        self.cancel_scope.cancel()

    async def _stop_minding(self) -> None:
        minder = self.minder
        if minder is None:
            return
        self.minder = None
        if not minder.done():
            minder.cancel()
            with anyio.CancelScope(shield=True):  # stopped even while this request is being cancelled
                await asyncio.wait([minder])
        if not minder.cancelled() and (error := minder.exception()) is not None:
            log.warning("could not keep a long answer alive: %s: %s", type(error).__name__, error)

    async def send(self, message: Message) -> None:
        await self._stop_minding()  # the answer is here: no more pings, and no two senders at once
        if not self.streaming:
            self.answering = True
            await self._send(message)
            return
        if message["type"] != "http.response.body":
            return  # the JSON answer's own start: the stream's was sent
        self.answer += message.get("body", b"")
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": sse_event(bytes(self.answer)), "more_body": False})


def sse_event(data: bytes) -> bytes:
    """One `event: message` frame of a JSON body (one data line each, should the JSON have line breaks)."""
    lines = b"".join(b"data: " + line + b"\r\n" for line in data.splitlines())
    return b"event: message\r\n" + lines + b"\r\n"


def accepts_sse(scope: Scope) -> bool:
    """Whether the client takes an SSE stream, by the SDK's own reading of the Accept header."""
    from mcp.server.streamable_http import check_accept_headers

    return check_accept_headers(Request(scope))[1]


def asks_for_progress(body: bytes) -> bool:
    """Whether a JSON-RPC body may carry `_meta.progressToken`. The key can only be spelled without its literal
    text through \\u escapes, so only a body with both an escape and no literal is parsed to be sure."""
    if b"progressToken" in body:
        return True
    if b"\\u" not in body:
        return False
    import pydantic_core

    try:
        message = pydantic_core.from_json(body)
        meta = message.get("params", {}).get("_meta", {})
        return isinstance(meta, dict) and "progressToken" in meta
    except Exception:
        return True  # not a message the SDK will serve: its own answer, the SSE way


def _replaying(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
