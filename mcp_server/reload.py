"""Config reload without a restart: `SIGHUP`, or `genroute reload` (which signals the servers of a data_dir).

A reload reads the config file again and builds a new snapshot (catalog, adapters, router: gateway.py) beside the
running one. An invalid file is refused with one log line and nothing changes. Otherwise the new snapshot is
swapped in whole: requests that started before keep theirs to the end (`SnapshotPin`), new ones and video jobs use
the new one, and the old adapters that the new config does not keep are closed once the old snapshot is idle.
Presets (prompts) are registered again, and every connected client is told that tools, resources and prompts
changed: sessions of the 2025-11-25 protocol by a notification on their session, 2026-07-28 clients through
`subscriptions/listen`.

What is read once at start stays until a restart: `[server]` (data_dir, database_url, folders), `[http]` and
`[media]`; a reload that changes them says so in the log.

Each serving process writes its pid to `<data_dir>/run/genroute-<pid>.pid` (owner-only) while it runs; `genroute
reload` signals each live one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from weakref import WeakSet

import anyio

from mcp_server.config import GatewayConfig, load_config
from mcp_server.errors import ConfigError
from mcp_server.gateway import Gateway, Snapshot, build_snapshot, discover
from mcp_server.private_files import private_dir, write_private
from mcp_server.sdk_internals import connection_of
from mcp_server.text import plural

log = logging.getLogger("genroute.reload")

RUN_DIR = "run"
DRAIN_POLL_S = 0.05
NOTIFY_TIMEOUT_S = 5.0
_RESTART_ONLY = ("server", "http", "media")
_UNPINNED = frozenset({"initialize", "subscriptions/listen"})  # a listen stream lasts as long as the client


def pid_dir(config: GatewayConfig) -> Path:
    return config.server.resolved_data_dir() / RUN_DIR


class SnapshotPin:
    """Server middleware: each request runs on the snapshot current when it arrived, and the sessions that make
    requests are remembered (weakly) so a reload can tell them the lists changed."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.connections: WeakSet[Any] = WeakSet()  # a connection goes when its client does

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        self.connections.add(connection_of(ctx.session))
        if ctx.method in _UNPINNED:
            return await call_next(ctx)
        with self.gateway.pinned():
            return await call_next(ctx)


class Reloader:
    """Reloads `gateway`'s config from `config_path` (as `genroute --config` named it: None reads
    $GENROUTE_CONFIG again, as at start) into the running MCP server `mcp`."""

    def __init__(self, mcp: Any, gateway: Gateway, pin: SnapshotPin, config_path: str | None, bus: Any) -> None:
        self.mcp = mcp
        self.gateway = gateway
        self.pin = pin
        self.config_path = config_path
        self.bus = bus
        self.presets: list[str] = list(gateway.config.presets)
        self._lock = anyio.Lock()

    async def reload(self) -> bool:
        """One reload; False when the new config was refused (the running one stays)."""
        async with self._lock:  # two signals in a row: one reload after the other
            running = self.gateway.current
            try:
                config = load_config(self.config_path)
                snapshot = build_snapshot(
                    config,
                    self.gateway.store,
                    self.gateway.observer,
                    reuse=running.router.adapters,
                    health=running.router.reliability.health,
                )
            except ConfigError as error:
                log.error("reload refused, the running config stays: %s", error)
                return False
            await discover(snapshot)
            self._say_restart_only(running.config, config)
            old = self.gateway.swap(snapshot)
            self._replace_presets(config)
            log.info(
                "config reloaded: %s, %s; requests already running finish on the previous one",
                plural(len(snapshot.catalog.cards()), "model"),
                plural(len(config.providers), "provider"),
            )
        await self._notify()
        await self._retire(old, snapshot)
        return True

    def _say_restart_only(self, before: GatewayConfig, after: GatewayConfig) -> None:
        changed = [f"[{name}]" for name in _RESTART_ONLY if getattr(before, name) != getattr(after, name)]
        if changed:
            log.warning("reload: %s changed; they take effect at the next restart", ", ".join(changed))

    def _replace_presets(self, config: GatewayConfig) -> None:
        from mcp_server.tools.presets import preset_prompt

        for name in self.presets:
            with contextlib.suppress(Exception):  # not registered yet (stdio builds its surface on first use)
                self.mcp.remove_prompt(name)
        for name, preset in config.presets.items():
            self.mcp.add_prompt(preset_prompt(name, preset))
        self.presets = list(config.presets)

    async def _notify(self) -> None:
        """notifications/{tools,resources,prompts}/list_changed to every session, and to listen streams."""
        from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

        for event in (ToolsListChanged(), ResourcesListChanged(), PromptsListChanged()):
            await self.bus.publish(event)
        for connection in list(self.pin.connections):
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):
                try:
                    await connection.send_tool_list_changed()
                    await connection.send_resource_list_changed()
                    await connection.send_prompt_list_changed()
                except Exception:  # a client that has gone: nothing to tell
                    log.debug("could not tell a session that the lists changed", exc_info=True)

    async def _retire(self, old: Snapshot, new: Snapshot) -> None:
        """Close the old adapters the new snapshot does not keep, once no request or call uses the old one (or
        once its routing deadline has passed: a call cannot outlive that)."""
        kept = {id(adapter) for adapter in new.router.adapters.values()}
        retired = [adapter for adapter in old.router.adapters.values() if id(adapter) not in kept]
        if not retired:
            return
        with anyio.move_on_after(old.config.routing.deadline_s + 5):
            while old.busy:  # noqa: ASYNC110 - two counters, no event to wait on: polled
                await anyio.sleep(DRAIN_POLL_S)
        for adapter in retired:
            with contextlib.suppress(Exception):
                await adapter.aclose()

    async def watch(self) -> None:
        """Reload on every SIGHUP, for as long as the server runs, with this process's pid file in place."""
        if not hasattr(signal, "SIGHUP"):
            return  # Windows: no SIGHUP, no `genroute reload`
        pid_file = pid_dir(self.gateway.config) / f"genroute-{os.getpid()}.pid"
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            write_private(private_dir(pid_file.parent) / pid_file.name, f"{os.getpid()}\n".encode())
            try:
                async for _ in signals:
                    log.info("SIGHUP: reloading the config")
                    await self.reload()
            finally:
                pid_file.unlink(missing_ok=True)


def _is_genroute(pid: int) -> bool:
    """A live process that is a genroute server (a pid file left by a crash may name someone else's since)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours to signal
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            return b"genroute" in cmdline.read_bytes() or b"mcp_server" in cmdline.read_bytes()
    return True


def reload_command(config: GatewayConfig) -> int:
    """`genroute reload`: SIGHUP to each server running on this config's data_dir."""
    if not hasattr(signal, "SIGHUP"):
        print("genroute: reload needs SIGHUP, which this platform does not have; restart the server.", file=sys.stderr)
        return 1
    folder = pid_dir(config)
    signalled: list[int] = []
    for pid_file in sorted(folder.glob("genroute-*.pid")) if folder.is_dir() else []:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if not _is_genroute(pid):
            pid_file.unlink(missing_ok=True)  # left behind by a process that is gone
            continue
        os.kill(pid, signal.SIGHUP)
        signalled.append(pid)
    if not signalled:
        print(f"genroute: no running genroute server found in {folder}", file=sys.stderr)
        return 1
    print(
        f"Asked {plural(len(signalled), 'server')} to reload (pid {', '.join(map(str, signalled))}); "
        "each logs the outcome."
    )
    return 0
