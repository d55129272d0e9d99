"""Section 5: from process start to the answer to `initialize` over stdio, genroute against the bare server.

What Claude Desktop waits for at every launch. The two are started alternately, `runs` times each,
so both see the same machine; the figure is the median, and (c) - (b) its difference.
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


def time_to_initialize(args: list[str], timeout_s: float = 60.0) -> tuple[float, float]:
    """Seconds from spawning `args` to the first line it writes back to `initialize`, and its CPU seconds by then."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args,
        cwd=procs.ROOT,
        env=procs.child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.flush()
        buffer = b""
        deadline = started + timeout_s
        while b"\n" not in buffer:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or process.poll() is not None:
                raise RuntimeError(f"{args!r} did not answer initialize (exit {process.poll()})")
            ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
            if ready:
                buffer += os.read(process.stdout.fileno(), 65536)
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds(process.pid)
        answer = json.loads(buffer.split(b"\n", 1)[0])
        if "result" not in answer:
            raise RuntimeError(f"{args!r} answered initialize with {answer!r}")
        return elapsed, cpu
    finally:
        process.kill()
        process.wait(timeout=10)


def run(upstream_base: str, config: Path, runs: int) -> dict[str, Any]:
    targets = {"bare": procs.bare_args(upstream_base), "genroute": procs.genroute_args(config)}
    for args in targets.values():  # warm the OS page cache and .pyc files once, unmeasured
        time_to_initialize(args)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    for i in range(runs):
        order = list(targets.items()) if i % 2 == 0 else list(reversed(targets.items()))
        for name, args in order:
            elapsed, cpu_s = time_to_initialize(args)
            samples[name].append(elapsed * 1000.0)
            cpu[name].append(cpu_s * 1000.0)
    out: dict[str, Any] = {}
    for name, values in samples.items():
        out[name] = {
            "runs": len(values),
            "median_ms": round(median(values), 1),
            "min_ms": round(min(values), 1),
            "p90_ms": round(percentile(values, 90), 1),
            "cpu_median_ms": round(median(cpu[name]), 1),
        }
    pairs = [g - b for g, b in zip(samples["genroute"], samples["bare"], strict=True)]
    out["genroute_minus_bare"] = {
        "median_ms": round(out["genroute"]["median_ms"] - out["bare"]["median_ms"], 1),
        "paired_median_ms": round(median(pairs), 1),
        "min_ms": round(out["genroute"]["min_ms"] - out["bare"]["min_ms"], 1),
        "cpu_median_ms": round(out["genroute"]["cpu_median_ms"] - out["bare"]["cpu_median_ms"], 1),
    }
    return out
