"""Sections `generations` and `team`: genroute against the bare forwarder with both MCP protocol generations.

One client at a time at the fleet's upstream latency, over streamable HTTP and over stdio, interleaved round after
round (bench/overhead.py's `interleaved`): the SDK `Client`'s default (stateless 2026-07-28) to (b) and (c), and a
plain JSON-RPC client on 2025-11-25 sessions (bench/sessions.py) to (b) and (c); over HTTP also a plain client on
2026-07-28 requests, which does not check results against the outputSchema as the SDK `Client` does (what that
check costs the client is inside the SDK rows). Each ratio is the median over rounds of that round's p50 ratio
(c)/(b), beside server CPU per call. `team` runs the same, and the
throughput section, on the team configuration (procs.Fleet(team=True): PostgreSQL, bearer keys with a budget and
a rate limit, /metrics).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench import procs, sessions
from bench.cpu import child_running
from bench.overhead import PROMPT, Target, bare_call, genroute_call, interleaved
from bench.stats import median

BARE_ARGS = {"prompt": PROMPT}
GENROUTE_ARGS = {"prompt": PROMPT, "model": procs.MODEL}
PAIRS = {
    "sdk_2026": ("genroute", "bare"),
    "jsonrpc_2025": ("genroute_jsonrpc", "bare_jsonrpc"),
    "jsonrpc_2026": ("genroute_plain_2026", "bare_plain_2026"),  # HTTP only
}


def session_call(
    session: sessions.HttpSession | sessions.StdioSession | sessions.StatelessHttpClient,
    tool: str,
    arguments: dict[str, Any],
) -> Any:
    async def call() -> None:
        await session.call(tool, arguments)

    return call


def ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """Per protocol generation: (c)/(b) p50 as the median of per-round ratios, and server CPU per call of each."""
    out: dict[str, Any] = {}
    for generation, (ours, floor) in PAIRS.items():
        if ours not in figures:
            continue
        rounds = [
            c / b for c, b in zip(figures[ours]["round_p50_ms"], figures[floor]["round_p50_ms"], strict=True) if b > 0
        ]
        out[generation] = {
            "p50_ratio": round(median(rounds), 4),
            "genroute_p50_ms": figures[ours]["p50_ms"],
            "bare_p50_ms": figures[floor]["p50_ms"],
            "genroute_cpu_us_per_call": figures[ours].get("server_cpu_us_per_call"),
            "bare_cpu_us_per_call": figures[floor].get("server_cpu_us_per_call"),
        }
    return out


async def run_http(fleet: procs.Fleet, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        http = create_mcp_http_client(headers=fleet.headers)
        bare = await stack.enter_async_context(Client(fleet.bare.url))
        ours = await stack.enter_async_context(Client(streamable_http_client(fleet.genroute.url, http_client=http)))
        bare_s = await stack.enter_async_context(sessions.HttpSession(fleet.bare.url))
        ours_s = await stack.enter_async_context(sessions.HttpSession(fleet.genroute.url, fleet.headers))
        bare_p = await stack.enter_async_context(sessions.StatelessHttpClient(fleet.bare.url))
        ours_p = await stack.enter_async_context(sessions.StatelessHttpClient(fleet.genroute.url, fleet.headers))
        targets = {
            "bare": Target(bare_call(bare), fleet.bare.pid),
            "genroute": Target(genroute_call(ours), fleet.genroute.pid),
            "bare_jsonrpc": Target(session_call(bare_s, "chat", BARE_ARGS), fleet.bare.pid),
            "genroute_jsonrpc": Target(session_call(ours_s, "chat_complete", GENROUTE_ARGS), fleet.genroute.pid),
            "bare_plain_2026": Target(session_call(bare_p, "chat", BARE_ARGS), fleet.bare.pid),
            "genroute_plain_2026": Target(session_call(ours_p, "chat_complete", GENROUTE_ARGS), fleet.genroute.pid),
        }
        figures = await interleaved(targets, rounds, block, warmup)
    return {"ratios": ratios(figures), "figures": figures}


async def run_stdio(fleet: procs.Fleet, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    env, cwd = procs.child_env(), str(procs.ROOT)
    bare_args, ours_args = procs.bare_args(fleet.upstream), procs.genroute_args(fleet.config)
    async with AsyncExitStack() as stack:
        bare = await stack.enter_async_context(Client(procs.stdio_params(bare_args)))
        bare_pid = child_running("bench.bare_server")
        ours = await stack.enter_async_context(Client(procs.stdio_params(ours_args)))
        ours_pid = child_running("-m mcp_server")
        bare_s = await stack.enter_async_context(sessions.StdioSession(bare_args, env, cwd))
        ours_s = await stack.enter_async_context(sessions.StdioSession(ours_args, env, cwd))
        targets = {
            "bare": Target(bare_call(bare), bare_pid),
            "genroute": Target(genroute_call(ours), ours_pid),
            "bare_jsonrpc": Target(session_call(bare_s, "chat", BARE_ARGS), bare_s.pid),
            "genroute_jsonrpc": Target(session_call(ours_s, "chat_complete", GENROUTE_ARGS), ours_s.pid),
        }
        figures = await interleaved(targets, rounds, block, warmup)
    return {"ratios": ratios(figures), "figures": figures}


async def run(fleet: procs.Fleet, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    return {
        "http": await run_http(fleet, rounds, block, warmup),
        "stdio": await run_stdio(fleet, rounds, block, warmup),
    }
