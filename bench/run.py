"""genroute's benchmark: one command, every figure, side by side with the floor it stands on.

    python -m bench [--quick | --smoke] [--only overhead,throughput,...] [--out FILE]

Starts the provider emulator (emulator/app.py) at fixed upstream latencies and measures the same
chat call three ways: (a) straight to the emulator with httpx2, (b) the bare SDK forwarder in
bench/bare_server.py, (c) genroute's chat_complete. Prints a table and writes JSON to bench/results/.
Targets are reported as pass/fail in the output; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from bench import coldstart, generations, overhead, procs, report, throughput
from bench.report import describe

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("overhead", "throughput", "slow", "coldstart", "media", "video", "usage", "image", "generations", "team")
DEFAULT_SECTIONS = SECTIONS[:8]  # generations and team run when named (team needs PostgreSQL): --smoke stays as it was

# Published per-request overheads of HTTP gateways on a localhost mock provider (see docs/performance.md).
PUBLISHED = {
    "portkey_oss_ms": 2.4,
    "litellm_ms": 4.3,
    "rust_go_gateways_ms": "< 1 (TensorZero 0.19 ms p50, Bifrost 0.011-0.059 ms)",
    "python_mcp_sdk_calls_per_s": "260-430 per process",
}
TARGETS = {
    "overhead_p50_ms": 0.5,
    "throughput_ratio": 0.9,
    "coldstart_ms": 150.0,
    "media_peak_ratio": 4.0,
    "usage_ms": 100.0,
    "image_preview_over_link": 1.2,  # genroute's default image call (preview) <= 1.2x output="link" + 60 ms
    "image_preview_extra_ms": 60.0,
    "image_preview_cpu_ms": 60.0,  # server CPU of the preview itself: (c) preview minus (d) link, per call
    "generation_p50_ratio": 1.05,  # sections 8 and 9: (c)/(b) p50, each transport and protocol generation
    "team_throughput_ratio": 1.0,  # section 9: (c)/(b) calls/s at every concurrency
}
IMAGE_TARGET_SIDE = 1024


@dataclass(frozen=True)
class Plan:
    """How much of each section to run: the full run, or a quick smoke run that still yields every figure."""

    overhead_rounds: int = 100  # short blocks, many rounds: the ways take turns every few calls, so a burst of
    overhead_block: int = 5  # other work on the machine hits all three alike (see docs/performance.md)
    overhead_warmup: int = 30
    latencies_ms: tuple[float, ...] = (0.0, 20.0)
    concurrency: tuple[int, ...] = (1, 16, 64)
    throughput_seconds: float = 4.0
    throughput_warmup_s: float = 0.5  # unmeasured calls before each closed loop's window
    throughput_rounds: int = 3
    slow_calls: int = 500
    slow_latency_ms: float = 2000.0
    coldstart_runs: int = 10
    coldstart_warmup: bool = True  # one unmeasured start of each server first (page cache, .pyc files)
    media_runs: int = 3
    media_size: str = "4096x4096"
    video_jobs: int = 1000
    video_window_s: float = 20.0
    usage_records: int = 1_000_000
    usage_repeats: int = 30
    image_sides: tuple[int, ...] = (1024, 2048)
    image_rounds: int = 10
    image_block: int = 2
    image_warmup: int = 2
    overlap_sections: bool = False  # run the sections that use no shared fleet alongside the fleet's


QUICK = Plan(
    overhead_rounds=2,
    overhead_block=5,
    overhead_warmup=3,
    throughput_seconds=0.5,
    throughput_rounds=1,
    slow_calls=50,
    slow_latency_ms=500.0,
    coldstart_runs=1,
    media_runs=1,
    video_jobs=50,
    video_window_s=3.0,
    usage_records=20_000,
    usage_repeats=3,
    image_sides=(1024,),
    image_rounds=1,
    image_block=1,
    image_warmup=1,
)
# The test suite's run (tests/test_bench_smoke.py): every section and figure once, on the smallest inputs that
# still exercise it: one fleet (20 ms upstream) serves overhead, throughput, cold start and the slow burst, and each
# process start costs a second of CPU, so there is one of each. Its numbers say nothing about speed.
SMOKE = replace(
    QUICK,
    overhead_rounds=2,
    overhead_block=2,
    overhead_warmup=1,
    latencies_ms=(20.0,),
    # long enough that 64 clients finish calls inside the window while the other sections share the machine
    # (0.3 s after 0.1 s of warm-up measured zero calls at 64 clients in a clean-clone CI run at load ~8)
    throughput_seconds=1.0,
    throughput_warmup_s=0.3,
    slow_calls=20,
    slow_latency_ms=20.0,
    coldstart_warmup=False,
    media_size="1024x1024",
    video_jobs=5,
    video_window_s=2.0,
    usage_records=2_000,
    usage_repeats=1,
    image_warmup=0,
    overlap_sections=True,
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


async def run_sections(plan: Plan, only: set[str], workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}

    async def section(name: str, body: Callable[[], Awaitable[Any]]) -> None:
        if name not in only:
            return
        log(f"-- {name}")
        started = time.perf_counter()
        try:
            results[name] = await body()
        except Exception as error:  # one failed section must not lose the others' figures
            results[name] = {"error": describe(error)}
        log(f"   {name} done in {time.perf_counter() - started:.1f} s")

    async def fleet_sections() -> None:
        """The sections measured against a fleet, one fleet per upstream latency, one after another."""
        latencies = list(plan.latencies_ms) if only & {"overhead", "throughput", "coldstart", "generations"} else []
        if "slow" in only and plan.slow_latency_ms not in latencies:
            latencies.append(plan.slow_latency_ms)  # its own fleet, unless it shares one (the smoke run)
        for latency in latencies:
            with procs.Fleet(latency, workdir / f"fleet-{latency:g}") as fleet:
                if latency in plan.latencies_ms:

                    async def overhead_body(fleet: procs.Fleet = fleet) -> dict[str, Any]:
                        args = (plan.overhead_rounds, plan.overhead_block, plan.overhead_warmup)
                        return {
                            "http": await overhead.run_http(fleet, *args),
                            "stdio": await overhead.run_stdio(fleet, *args),
                        }

                    await section_into(results, "overhead", f"latency_{latency:g}ms", overhead_body, only, log)
                if latency == plan.latencies_ms[0]:

                    async def throughput_body(fleet: procs.Fleet = fleet) -> dict[str, Any]:
                        return await throughput.closed_loops(
                            fleet,
                            list(plan.concurrency),
                            plan.throughput_seconds,
                            plan.throughput_rounds,
                            plan.throughput_warmup_s,
                        )

                    async def coldstart_body(fleet: procs.Fleet = fleet) -> dict[str, Any]:
                        return await anyio.to_thread.run_sync(
                            coldstart.run, fleet.upstream, fleet.config, plan.coldstart_runs, plan.coldstart_warmup
                        )

                    async def generations_body(fleet: procs.Fleet = fleet) -> dict[str, Any]:
                        return await generations.run(fleet, *_overhead_args(plan))

                    await section("throughput", throughput_body)
                    await section("coldstart", coldstart_body)
                    await section("generations", generations_body)
                if latency == plan.slow_latency_ms:

                    async def slow_body(fleet: procs.Fleet = fleet) -> dict[str, Any]:
                        out = await throughput.slow_burst(fleet, plan.slow_calls, timeout_s=120.0)
                        out["upstream_latency_ms"] = plan.slow_latency_ms
                        return out

                    await section("slow", slow_body)

    async def standalone(name: str) -> None:
        results[name] = await optional_section(name, plan, workdir, log)

    standalones = [name for name in ("media", "video", "usage", "image") if name in only]
    if plan.overlap_sections:  # the smoke run: its figures are not read, so its sections may share the machine
        async with anyio.create_task_group() as group:
            group.start_soon(fleet_sections)
            for name in standalones:
                group.start_soon(standalone, name)
    else:
        await fleet_sections()
        for name in standalones:
            await standalone(name)
    if "team" in only:  # alone on the machine: PostgreSQL's own processes would skew the others' figures
        await section("team", lambda: team_section(plan, workdir / "team"))
    return results


def _overhead_args(plan: Plan) -> tuple[int, int, int]:
    return plan.overhead_rounds, plan.overhead_block, plan.overhead_warmup


async def team_section(plan: Plan, workdir: Path) -> dict[str, Any]:
    """The team configuration (PostgreSQL, bearer keys with a budget and a rate limit, /metrics) at the first
    latency: both protocol generations one client at a time, and throughput."""
    with procs.Fleet(plan.latencies_ms[0], workdir, team=True) as fleet:
        out = await generations.run(fleet, *_overhead_args(plan))
        concurrency = list(plan.concurrency)
        out["throughput"] = await throughput.closed_loops(
            fleet, concurrency, plan.throughput_seconds, plan.throughput_rounds
        )
    return out


async def section_into(
    results: dict[str, Any],
    name: str,
    key: str,
    body: Callable[[], Awaitable[Any]],
    only: set[str],
    log: Callable[[str], None],
) -> None:
    """Like `section`, for sections measured once per latency: results[name][key]."""
    if name not in only:
        return
    log(f"-- {name} ({key})")
    started = time.perf_counter()
    try:
        value = await body()
    except Exception as error:
        value = {"error": describe(error)}
    results.setdefault(name, {})[key] = value
    log(f"   {name} ({key}) done in {time.perf_counter() - started:.1f} s")


async def optional_section(name: str, plan: Plan, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Sections whose genroute side lands with other issues: run when their module is present."""
    log(f"-- {name}")
    started = time.perf_counter()
    try:
        if name == "media":
            from bench import media

            result = await media.run(workdir / "media", plan.media_runs, plan.media_size)
        elif name == "video":
            from bench import video

            result = await video.run(workdir / "video", plan.video_jobs, plan.video_window_s)
        elif name == "image":
            from bench import image

            args = (plan.image_sides, plan.image_rounds, plan.image_block, plan.image_warmup)
            result = await image.run(workdir / "image", *args)
        else:
            from bench import usage

            result = await anyio.to_thread.run_sync(
                usage.run, workdir / "usage", plan.usage_records, plan.usage_repeats
            )
    except Exception as error:
        result = {"error": describe(error)}
    log(f"   {name} done in {time.perf_counter() - started:.1f} s")
    return result


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target: the measured figure and whether it holds."""
    out: dict[str, Any] = {}

    def check(key: str, value: Any, limit: float, at_most: bool = True) -> None:
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = {"value": value, "target": limit, "ok": value <= limit if at_most else value >= limit}

    for latency, by_transport in results.get("overhead", {}).items():
        for transport, figures in by_transport.items():
            value = figures.get("genroute_minus_bare", {}).get("p50_ms") if isinstance(figures, dict) else None
            check(f"overhead_{transport}_{latency}_p50_ms", value, TARGETS["overhead_p50_ms"])
    for clients, row in results.get("throughput", {}).items():
        if isinstance(row, dict):
            check(f"throughput_{clients}_ratio", row.get("genroute_vs_bare"), TARGETS["throughput_ratio"], False)
    slow = results.get("slow", {}).get("genroute", {})
    if "completed" in slow:
        out["slow_all_completed"] = {"value": slow["completed"], "target": slow["calls"], "ok": slow["errors"] == 0}
    cold = results.get("coldstart", {}).get("genroute_minus_bare", {})
    check("coldstart_minus_bare_ms", cold.get("paired_median_ms"), TARGETS["coldstart_ms"])  # of alternated runs
    media = results.get("media", {})
    check("media_peak_ratio", media.get("peak_growth_over_image_bytes"), TARGETS["media_peak_ratio"])
    check("usage_get_usage_ms", results.get("usage", {}).get("get_usage_median_ms"), TARGETS["usage_ms"])
    for key, row in results.get("image", {}).items():
        if not (isinstance(row, dict) and key.endswith(f"_{IMAGE_TARGET_SIDE}") and "preview" in row):
            continue
        link_p50 = row["link"]["p50_ms"]
        limit = round(TARGETS["image_preview_over_link"] * link_p50 + TARGETS["image_preview_extra_ms"], 2)
        check(f"image_{key}_preview_p50_ms", row["preview"]["p50_ms"], limit)
        check(f"image_{key}_preview_cpu_ms", row.get("preview_cpu_ms"), TARGETS["image_preview_cpu_ms"])
    for name in ("generations", "team"):
        section = results.get(name, {})
        for transport in ("http", "stdio"):
            for generation, figures in section.get(transport, {}).get("ratios", {}).items():
                check(
                    f"{name}_{transport}_{generation}_p50_ratio", figures["p50_ratio"], TARGETS["generation_p50_ratio"]
                )
        for clients, row in section.get("throughput", {}).items():
            if isinstance(row, dict):
                check(
                    f"team_throughput_{clients}_ratio",
                    row.get("genroute_vs_bare"),
                    TARGETS["team_throughput_ratio"],
                    False,
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short smoke run: every figure, few samples")
    size.add_argument("--smoke", action="store_true", help="the test suite's run: every figure, smallest inputs")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: bench/results/<time>.json)")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = {"smoke": SMOKE, "quick": QUICK, "full": Plan()}[mode]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    info = machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genroute-bench-") as tmp:
        results = anyio.run(run_sections, plan, only, Path(tmp), log)
    document = {
        "mode": mode,
        "machine": {**info, "loadavg_end": _loadavg()},
        "plan": plan.__dict__,
        "published": PUBLISHED,
        "targets": TARGETS,
        "results": results,
        "verdicts": verdicts(results),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    out = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}{'' if mode == 'full' else '-' + mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    print(report.render(document))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
