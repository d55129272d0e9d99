"""Before authentication nothing grows without bound: uvicorn's httptools protocol with limits on header size,
header arrival time and open connections.

uvicorn alone has none of them: httptools buffers a header of any length (one unfinished 100 MB header held
130 MB), a connection that never finishes its headers stays open for good, and `limit_concurrency` answers 503 to
everyone alike once reached, authenticated or not. Here, per connection:

- a request's headers may take `max_header_bytes` (431 and close beyond that, even while still arriving);
- they must be complete within `header_timeout_s` of the connection opening or of the previous answer on it
  (408 and close; a connection that sent nothing is just closed);
- at most `max_connections` are open. A new one over that drops the connection that has waited longest for its
  headers (a slow sender, or one idle between requests), or is itself closed when every other connection is
  busy with a request, so a flood of slow connections cannot keep out /healthz or a client with a key.
"""

from __future__ import annotations

import asyncio
import logging
import math

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("genroute.http")


def guarded_protocol(max_header_bytes: int, header_timeout_s: float, max_connections: int) -> type[asyncio.Protocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with these limits and its own record of waiting connections."""

    class Guarded(_GuardedProtocol):
        pass

    Guarded.max_header_bytes = max_header_bytes
    Guarded.header_timeout_s = header_timeout_s
    Guarded.max_connections = max_connections
    Guarded.waiting = {}
    return Guarded


class _GuardedProtocol(HttpToolsProtocol):
    max_header_bytes: int
    header_timeout_s: float
    max_connections: int
    # Connections waiting for a request's headers, longest-waiting first (a dict keeps insertion order)
    waiting: dict[_GuardedProtocol, None]

    _in_headers = True  # the bytes arriving belong to a request's headers
    _header_bytes = 0  # bytes received in headers so far (an upper bound on the headers' size)
    _header_timer: asyncio.TimerHandle | None = None
    _refused = False
    _warned_at = -math.inf  # class-wide: when the connection limit was last logged

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()
        if len(self.connections) > self.max_connections:
            oldest = next(iter(self.waiting))
            oldest._close()  # itself when no other connection is waiting: every other one is serving a request
            if self.loop.time() - _GuardedProtocol._warned_at > 60:
                _GuardedProtocol._warned_at = self.loop.time()
                log.warning(
                    "%d client connections open ([http] max_connections): dropping those waiting longest "
                    "for their headers",
                    len(self.connections),
                )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(431, "Request header fields too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._stop_waiting()
        if self._header_size() > self.max_header_bytes:  # all of it arrived in one read
            self._refuse(431, "Request header fields too large")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline
        super().on_response_complete()
        if idle and not self.transport.is_closing():
            self._await_headers()  # the next request's headers are due within header_timeout_s as well

    def _await_headers(self) -> None:
        self.waiting[self] = None
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self in self.waiting:
            if self._header_bytes:
                self._refuse(408, "Request headers not received in time")
            else:
                self._close()

    def _header_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16

    def _refuse(self, status: int, message: str) -> None:
        """Answer with `status` and close, unless an answer is already being sent on this connection."""
        self._refused = True
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            body = message.encode()
            self.transport.write(
                STATUS_LINE[status]
                + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                + b"content-length: %d\r\n\r\n" % len(body)
                + body
            )
        self._close()

    def _close(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()
