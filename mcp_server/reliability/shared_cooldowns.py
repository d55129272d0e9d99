"""Provider cooldowns shared by the processes on one store (replicas on PostgreSQL, processes on one data_dir).

What one process learns about a failing provider (a refused key, a provider down) the others know within a
couple of seconds, instead of each paying the failed calls itself, as LiteLLM's router does through Redis.
Nothing on a call's path: this background loop publishes the cooldowns its process starts (at once) and reads
everyone's (every SYNC_EVERY_S); the retry loop only looks at Health's memory.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import anyio

from mcp_server.reliability.health import Health
from mcp_server.store.base import Store

log = logging.getLogger("genroute.health")
SYNC_EVERY_S = 2.0


async def share_cooldowns(health: Health, store: Store, every_s: float = SYNC_EVERY_S) -> None:
    """Run until cancelled (in the gateway's task group)."""
    started = anyio.Event()

    def on_record(failed: bool) -> None:
        if failed:
            started.set()  # a failure may have started a cooldown: publish it now, not at the next tick

    health.listeners.append(on_record)
    failing = False
    try:
        while True:
            try:
                for provider, (until, reason) in health.take_started().items():
                    await store.share_cooldown(provider, datetime.fromtimestamp(until, UTC), reason)
                shared = await store.shared_cooldowns()
                health.adopt_shared({name: (until.timestamp(), why) for name, (until, why) in shared.items()})
                failing = False
            except Exception:  # the store is down: each process keeps its own cooldowns meanwhile
                if not failing:
                    log.warning("could not share provider cooldowns with other processes", exc_info=True)
                failing = True
            with anyio.move_on_after(every_s):
                await started.wait()
            started = anyio.Event()
    finally:
        health.listeners.remove(on_record)
