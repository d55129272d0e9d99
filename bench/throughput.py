"""Section 2: tool calls per second over streamable HTTP with 1, 16 and 64 concurrent clients, and 500 slow calls.

(b), (b') (the bare forwarder on uvloop) and (c) run side by side, alternating, `rounds` times; each figure is
the median over rounds.
Errors are counted, never retried. The slow-call burst checks that 500 calls held 2 s upstream all
finish with no pool time-out and that the server's event loop keeps answering /healthz meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench import loadgen, procs
from bench.cpu import cpu_seconds
from bench.overhead import PROMPT
from bench.stats import median, percentile

BARE_TOOL = ("chat", {"prompt": PROMPT})
GENROUTE_TOOL = ("chat_complete", {"prompt": PROMPT, "model": procs.MODEL})


def _healthz(mcp_url: str) -> str:
    return mcp_url.removesuffix("/mcp") + "/healthz"


async def closed_loops(
    fleet: procs.Fleet, concurrency: list[int], seconds: float, rounds: int, warmup_s: float = 0.5
) -> dict[str, Any]:
    servers = {
        "bare": (fleet.bare, loadgen.tool_call_request(fleet.bare.url, *BARE_TOOL)),
        "bare_uvloop": (fleet.bare_uvloop, loadgen.tool_call_request(fleet.bare_uvloop.url, *BARE_TOOL)),
        "genroute": (
            fleet.genroute,
            loadgen.tool_call_request(fleet.genroute.url, *GENROUTE_TOOL, headers=fleet.headers),
        ),
    }
    for proc, request in servers.values():  # warm both: imports, pools, caches
        await loadgen.closed_loop(proc.url, request, 4, warmup_s, warmup_s=min(0.2, warmup_s))
    out: dict[str, Any] = {}
    for clients in concurrency:
        per: dict[str, dict[str, list[float]]] = {name: {"cps": [], "cpu": [], "p50": []} for name in servers}
        errors = dict.fromkeys(servers, 0)
        first_error: dict[str, str | None] = dict.fromkeys(servers)
        for round_no in range(rounds):
            order = list(servers.items()) if round_no % 2 == 0 else list(reversed(servers.items()))
            for name, (proc, request) in order:
                cpu_before = cpu_seconds(proc.pid)
                result = await loadgen.closed_loop(proc.url, request, clients, seconds, warmup_s)
                cpu_used = cpu_seconds(proc.pid) - cpu_before
                per[name]["cps"].append(result.calls_per_s)
                per[name]["cpu"].append(cpu_used / max(result.calls, 1) * 1e6)
                per[name]["p50"].append(percentile(result.latencies_ms, 50))
                errors[name] += result.errors
                first_error[name] = first_error[name] or result.first_error
        row: dict[str, Any] = {}
        for name in servers:
            row[name] = {
                "calls_per_s": round(median(per[name]["cps"]), 1),
                "round_calls_per_s": [round(v, 1) for v in per[name]["cps"]],
                "p50_ms": round(median(per[name]["p50"]), 3),
                "server_cpu_us_per_call": round(median(per[name]["cpu"]), 1),
                "errors": errors[name],
            }
            if first_error[name]:
                row[name]["first_error"] = first_error[name]
        for floor in ("bare", "bare_uvloop"):
            floor_cps = row[floor]["calls_per_s"]
            row[f"genroute_vs_{floor}"] = round(row["genroute"]["calls_per_s"] / floor_cps, 3) if floor_cps else None
        out[f"clients_{clients}"] = row
    return out


async def slow_burst(fleet: procs.Fleet, calls: int, timeout_s: float) -> dict[str, Any]:
    """`calls` simultaneous calls against an upstream that holds each one (the fleet's latency)."""
    out: dict[str, Any] = {}
    for name, proc, tool in (("bare", fleet.bare, BARE_TOOL), ("genroute", fleet.genroute, GENROUTE_TOOL)):
        request = loadgen.tool_call_request(proc.url, *tool)
        stop = asyncio.Event()
        probe = asyncio.create_task(loadgen.probe_lag(_healthz(proc.url), stop))
        await asyncio.sleep(0.3)  # a few idle probes first: the baseline
        try:
            result = await loadgen.burst(proc.url, request, calls, timeout_s)
        finally:
            stop.set()
            lags = await probe
        out[name] = {
            "calls": calls,
            "completed": result.calls,
            "errors": result.errors,
            "wall_s": round(result.seconds, 3),
            "call_p50_ms": round(percentile(result.latencies_ms, 50), 1),
            "call_max_ms": round(max(result.latencies_ms, default=float("nan")), 1),
            "healthz_p50_ms": round(percentile(lags, 50), 2),
            "healthz_max_ms": round(max(lags, default=float("nan")), 2),
            "healthz_probes": len(lags),
        }
        if result.first_error:
            out[name]["first_error"] = result.first_error
    return out
