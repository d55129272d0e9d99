"""Ledger writes held until the answer they belong to has been sent.

The answer never depends on its ledger write: a write that fails is logged, not raised (accountant.py), since the
provider has answered and failing the call would waste what was paid for. So on the HTTP path, where the SQLite
write is a commit on the event loop, it waits until the answer's last byte is handed to the connection and then
runs at once, in the same task, before the loop serves anything else: a client that reads its usage right after an
answer still finds the call there. Only a store whose writes are visible to everyone as soon as they are made there
(SQLite's inline write, `Store.writes_after_answer`) is held; a shared PostgreSQL is written before the answer, as
another replica may be asked next. A video job's background work that inherited a request's context after that
request has been answered finds the hold released, and writes at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import anyio

Write = Callable[[], Awaitable[None]]


class HeldWrites:
    """The writes held while one answer is being produced (http_answers.py opens one per JSON answer)."""

    __slots__ = ("is_open", "writes")

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.is_open = True

    def hold(self, write: Write) -> bool:
        """Keep `write` for after the answer; False once the answer is out (then the caller writes now)."""
        if self.is_open:
            self.writes.append(write)
        return self.is_open

    async def release(self) -> None:
        """Run the held writes (each one catches its own failures), even while the request is being cancelled."""
        self.is_open = False
        if self.writes:
            writes, self.writes = self.writes, []
            with anyio.CancelScope(shield=True):
                for write in writes:
                    await write()


HELD_WRITES: ContextVar[HeldWrites | None] = ContextVar("genroute_held_writes", default=None)
