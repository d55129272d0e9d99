"""Section 1: one client at a time, the same chat call three ways, over streamable HTTP and over stdio.

(a) straight to the emulator with httpx2; (b) the bare SDK forwarder; (c) genroute's chat_complete.
Also (b'): the same bare forwarder on uvloop, the event loop genroute runs on, so that (c)-(b') is genroute's
own cost with the loop taken out of the comparison ((b) keeps the SDK's defaults, as the targets ask).
The three are interleaved in short blocks, round after round, so background load on a shared machine
hits all of them alike; each figure is the median over rounds of that round's percentile.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client

from bench import procs
from bench.cpu import child_running, cpu_seconds
from bench.stats import median, percentile, spread, summary

PROMPT = "Say hello to the benchmark."
Call = Callable[[], Awaitable[None]]


def direct_call(client: httpx2.AsyncClient) -> Call:
    body = {"model": procs.MODEL, "messages": [{"role": "user", "content": PROMPT}]}

    async def call() -> None:
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        if not response.json()["choices"][0]["message"]["content"]:
            raise RuntimeError("direct call: empty answer")

    return call


def tool_call(client: Client, tool: str, arguments: dict[str, Any]) -> Call:
    async def call() -> None:
        result = await client.call_tool(tool, arguments)
        if result.is_error:
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            raise RuntimeError(f"{tool} failed: {text}")

    return call


def bare_call(client: Client) -> Call:
    return tool_call(client, "chat", {"prompt": PROMPT})


def genroute_call(client: Client) -> Call:
    return tool_call(client, "chat_complete", {"prompt": PROMPT, "model": procs.MODEL})


def direct_client(upstream_base: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=f"{upstream_base}/v1",
        headers={"Authorization": f"Bearer {procs.KEY}"},
        timeout=httpx2.Timeout(30.0),
        trust_env=False,
    )


@dataclass
class Target:
    """One way of making the call, and the server process whose CPU time it costs (None: no server)."""

    call: Call
    pid: int | None = None


async def interleaved(targets: dict[str, Target], rounds: int, block: int, warmup: int) -> dict[str, Any]:
    """Run each target `block` times in turn, `rounds` times; per-round and pooled percentiles, server CPU."""
    for target in targets.values():
        for _ in range(warmup):
            await target.call()
    samples: dict[str, list[list[float]]] = {name: [] for name in targets}
    cpu_s = dict.fromkeys(targets, 0.0)
    names = list(targets)
    for round_no in range(rounds):
        for name in rotated(names, round_no):
            target = targets[name]
            times: list[float] = []
            cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
            for _ in range(block):
                started = time.perf_counter()
                await target.call()
                times.append((time.perf_counter() - started) * 1000.0)
            cpu_s[name] += (cpu_seconds(target.pid) - cpu_before) if target.pid else 0.0
            samples[name].append(times)
    figures = _figures(samples)
    for name, target in targets.items():
        if target.pid:
            figures[name]["server_cpu_us_per_call"] = round(cpu_s[name] / (rounds * block) * 1e6, 1)
    genroute_cpu = figures.get("genroute", {}).get("server_cpu_us_per_call")
    for floor in ("bare", "bare_uvloop"):
        floor_cpu = figures.get(floor, {}).get("server_cpu_us_per_call")
        if genroute_cpu is not None and floor_cpu is not None:
            figures[f"genroute_minus_{floor}"]["server_cpu_us_per_call"] = round(genroute_cpu - floor_cpu, 1)
    return figures


def rotated(names: list[str], round_no: int) -> list[str]:
    """The order of round `round_no`: the list turned by one place each round, so every target leads equally often.

    A block runs faster right after a block on the same server, its code and data still in the caches. Reversing
    the order every other round, as this did before, ran the first and the last target twice in a row at every
    round's edge, and only those two ever got that head start: in section 8 the first pair's bare forwarder and
    the last pair's genroute. Measured in one fleet, alternating the two orders (60 rounds each, three times):
    genroute / bare with the SDK client 1.03, 1.10, 1.10 reversed against 1.01, 1.05, 1.05 turned. Turned, no
    target follows itself, and which one meets its own server's block at a round's edge changes every round.
    """
    shift = round_no % len(names)
    return names[shift:] + names[:shift]


def _figures(samples: dict[str, list[list[float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, per_round in samples.items():
        pooled = [t for times in per_round for t in times]
        figure: dict[str, Any] = dict(summary(pooled))
        figure["round_p50_ms"] = [round(percentile(times, 50), 4) for times in per_round]
        figure["p50_ms"] = round(median(figure["round_p50_ms"]), 4)  # median of round medians: steadier
        out[name] = figure
    pairs = (("genroute", "bare"), ("genroute", "bare_uvloop"), ("genroute", "direct"), ("bare", "direct"))
    for left, right in pairs:
        if left in out and right in out:
            diff_rounds = [
                round(lp - rp, 4) for lp, rp in zip(out[left]["round_p50_ms"], out[right]["round_p50_ms"], strict=True)
            ]
            out[f"{left}_minus_{right}"] = {
                "p50_ms": round(median(diff_rounds), 4),
                "p95_ms": round(out[left]["p95_ms"] - out[right]["p95_ms"], 4),
                "p99_ms": round(out[left]["p99_ms"] - out[right]["p99_ms"], 4),
                "round_p50_ms": diff_rounds,
                "round_spread_ms": round(spread(diff_rounds), 4),
            }
    return out


async def run_http(fleet: procs.Fleet, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        direct = await stack.enter_async_context(direct_client(fleet.upstream))
        bare_client = await stack.enter_async_context(Client(fleet.bare.url))
        bare_uvloop_client = await stack.enter_async_context(Client(fleet.bare_uvloop.url))
        genroute_client = await stack.enter_async_context(Client(fleet.genroute.url))
        targets = {
            "direct": Target(direct_call(direct)),
            "bare": Target(bare_call(bare_client), fleet.bare.pid),
            "bare_uvloop": Target(bare_call(bare_uvloop_client), fleet.bare_uvloop.pid),
            "genroute": Target(genroute_call(genroute_client), fleet.genroute.pid),
        }
        return await interleaved(targets, rounds, block, warmup)


async def run_stdio(fleet: procs.Fleet, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        direct = await stack.enter_async_context(direct_client(fleet.upstream))
        bare_client = await stack.enter_async_context(Client(procs.stdio_params(procs.bare_args(fleet.upstream))))
        bare_pid = child_running("bench.bare_server")  # the only one so far
        bare_uvloop_args = procs.bare_args(fleet.upstream, "--uvloop")
        bare_uvloop_client = await stack.enter_async_context(Client(procs.stdio_params(bare_uvloop_args)))
        genroute_client = await stack.enter_async_context(Client(procs.stdio_params(procs.genroute_args(fleet.config))))
        targets = {
            "direct": Target(direct_call(direct)),
            "bare": Target(bare_call(bare_client), bare_pid),
            "bare_uvloop": Target(bare_call(bare_uvloop_client), child_running("--uvloop")),
            "genroute": Target(genroute_call(genroute_client), child_running("-m mcp_server")),
        }
        return await interleaved(targets, rounds, block, warmup)
