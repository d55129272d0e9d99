"""API-key lookups cached per process on PostgreSQL, kept true by LISTEN/NOTIFY.

Why: every HTTP request looks its key up; a round trip costs psycopg's async client a few hundred us of CPU, a
tenth of the bare forwarder's whole call. Why it stays correct: a trigger on api_keys (NOTIFY_MIGRATION) notifies
the changed key's hash when a transaction that creates, updates, revokes or deletes a key commits, from any process
(`genroute keys` included); each process listens on one connection of its own and drops that hash. Answers are kept
only while that connection is listening: before it has started, after it broke and until it listens again, every
lookup goes to the database. A probe every PROBE_S seconds finds a connection that died silently; TTL_S bounds what
a lost notification could ever cost. A lookup that was in flight while anything changed is not kept (generation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import AsyncConnection

from mcp_server.store.base import ApiKeyRecord

log = logging.getLogger("genroute.store")

CHANNEL = "genroute_keys"
TTL_S = 10.0
PROBE_S = 2.0
CONNECT_TIMEOUT_S = 10
MAX_ENTRIES = 10_000  # unknown hashes are kept too (a client retrying a wrong key); the oldest go first
RETRY_S = (0.5, 30.0)  # reconnect backoff: first, most

# last_used_at alone (touch_key, once a minute per key and replica) changes nothing a lookup answers: no notification
NOTIFY_MIGRATION = f"""
CREATE OR REPLACE FUNCTION genroute_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'last_used_at') = (to_jsonb(NEW) - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM pg_notify('{CHANNEL}', OLD.key_hash); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN PERFORM pg_notify('{CHANNEL}', NEW.key_hash); END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS genroute_keys_changed ON api_keys;
CREATE TRIGGER genroute_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION genroute_keys_changed();
"""


def listener_name() -> str:
    """The listening connection's application_name in pg_stat_activity: which process it serves."""
    return f"genroute-keys-{os.getpid()}"


class KeyCache:
    def __init__(self, url: str, *, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, ApiKeyRecord | None]] = {}  # hash -> (when fetched, answer)
        self._generation = 0  # bumped by every change seen: an answer fetched across one is not kept
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    async def lookup(self, key_hash: str, fetch: Callable[[], Awaitable[ApiKeyRecord | None]]) -> ApiKeyRecord | None:
        """The cached answer for `key_hash` while it may be trusted, else `fetch()`'s (kept when it may be)."""
        entry = self._entries.get(key_hash) if self._listening else None
        if entry is not None and time.monotonic() - entry[0] < self._ttl_s:
            return entry[1]
        self._start()
        generation = self._generation
        record = await fetch()
        if self._listening and generation == self._generation:
            self._entries.pop(key_hash, None)  # re-inserted last: the dict stays oldest first
            self._entries[key_hash] = (time.monotonic(), record)
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]
        return record

    def forget(self, key_hash: str | None = None) -> None:
        """Drop one hash's answer (None: all of them); lookups in flight are not kept either."""
        self._generation += 1
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="genroute-key-cache")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        delay = RETRY_S[0]
        while True:
            try:
                conn = await AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=listener_name()
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.forget()  # whatever changed before LISTEN was not heard
                    self._listening, delay = True, RETRY_S[0]
                    while True:
                        async for notice in conn.notifies(timeout=PROBE_S):
                            self.forget(notice.payload)
                        await asyncio.wait_for(conn.execute("SELECT 1"), PROBE_S)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self._listening:
                    log.warning("key lookups go to the database until change notifications resume: %s", exc)
            finally:
                self._listening = False
                self.forget()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])
