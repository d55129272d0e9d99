"""Section 5: cold start over stdio, genroute against the bare server, as Claude Desktop starts it.

Each start is timed twice: spawn -> the answer to `initialize` (what the issue's target is about), and
spawn -> the answer to the `tools/list` the client sends next (after `notifications/initialized`): when the
user sees the tools. genroute builds its tools on that first request (`DeferredSurface`), so the second
figure is the honest one for what it costs in all.

The two servers are started alternately, `runs` times each, so both see the same machine. (c)-(b) is
reported two ways: the paired median (the median of genroute's time minus the bare server's time in the
same round: each pair saw the same moment of the machine's load, so this is the figure the target uses),
and the difference of the two medians.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.cpu import process_cpu_seconds
from bench.stats import median, percentile

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
STAGES = ("initialize", "tools_list")  # figures of a stage other than the first carry its name as a prefix


class _Reader:
    """Lines from a child's stdout, each read within the deadline or an error naming what did not come."""

    def __init__(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        self.process = process
        self.deadline = deadline
        self.buffer = b""

    def answer(self, request_id: int, what: str) -> dict[str, Any]:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("id") == request_id:
                    if "result" not in message:
                        raise RuntimeError(f"{what} was answered with {message!r}")
                    return message
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0 or self.process.poll() is not None:
                raise RuntimeError(f"no answer to {what} (exit {self.process.poll()})")
            assert self.process.stdout is not None
            ready, _, _ = select.select([self.process.stdout], [], [], min(remaining, 0.5))
            if ready:
                self.buffer += os.read(self.process.stdout.fileno(), 1 << 20)


def time_start(args: list[str], timeout_s: float = 60.0) -> dict[str, tuple[float, float]]:
    """For each stage, seconds from spawning `args` to its answer and the process's CPU seconds by then."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args,
        cwd=procs.ROOT,
        env=procs.child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    reader = _Reader(process, started + timeout_s)

    def send(*messages: dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        process.stdin.flush()

    out: dict[str, tuple[float, float]] = {}
    try:
        send(INITIALIZE)
        reader.answer(1, "initialize")
        out["initialize"] = (time.perf_counter() - started, process_cpu_seconds(process.pid))
        send(INITIALIZED, TOOLS_LIST)
        tools = reader.answer(2, "tools/list")["result"].get("tools")
        out["tools_list"] = (time.perf_counter() - started, process_cpu_seconds(process.pid))
        if not tools:
            raise RuntimeError(f"{args!r} listed no tools")
        return out
    finally:
        process.kill()
        process.wait(timeout=10)


def _key(stage: str, figure: str) -> str:
    return figure if stage == STAGES[0] else f"{stage}_{figure}"


def run(upstream_base: str, config: Path, runs: int, warmup: bool = True) -> dict[str, Any]:
    targets = {"bare": procs.bare_args(upstream_base), "genroute": procs.genroute_args(config)}
    for args in targets.values() if warmup else ():  # warm the OS page cache and .pyc files once, unmeasured
        time_start(args)
    wall: dict[str, dict[str, list[float]]] = {name: {stage: [] for stage in STAGES} for name in targets}
    cpu: dict[str, dict[str, list[float]]] = {name: {stage: [] for stage in STAGES} for name in targets}
    for i in range(runs):
        order = list(targets.items()) if i % 2 == 0 else list(reversed(targets.items()))
        for name, args in order:
            for stage, (elapsed, cpu_s) in time_start(args).items():
                wall[name][stage].append(elapsed * 1000.0)
                cpu[name][stage].append(cpu_s * 1000.0)
    out: dict[str, Any] = {name: {"runs": runs} for name in targets}
    out["genroute_minus_bare"] = {}
    for stage in STAGES:
        for name in targets:
            values = wall[name][stage]
            out[name][_key(stage, "median_ms")] = round(median(values), 1)
            out[name][_key(stage, "min_ms")] = round(min(values), 1)
            out[name][_key(stage, "p90_ms")] = round(percentile(values, 90), 1)
            out[name][_key(stage, "cpu_median_ms")] = round(median(cpu[name][stage]), 1)
        g, b = out["genroute"], out["bare"]
        pairs = [x - y for x, y in zip(wall["genroute"][stage], wall["bare"][stage], strict=True)]
        cpu_pairs = [x - y for x, y in zip(cpu["genroute"][stage], cpu["bare"][stage], strict=True)]
        out["genroute_minus_bare"] |= {
            _key(stage, "median_ms"): round(g[_key(stage, "median_ms")] - b[_key(stage, "median_ms")], 1),
            _key(stage, "paired_median_ms"): round(median(pairs), 1),
            _key(stage, "min_ms"): round(g[_key(stage, "min_ms")] - b[_key(stage, "min_ms")], 1),
            _key(stage, "cpu_paired_median_ms"): round(median(cpu_pairs), 1),
        }
    return out
