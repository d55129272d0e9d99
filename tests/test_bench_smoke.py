"""The benchmark runs end to end in its smoke mode (every section, smallest inputs) and produces every figure it
promises.

No timing is asserted here (speed belongs to the bench's own report): only that each section ran,
that every figure is present and a finite number, and that no call failed along the way.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _finite(document: Any, *path: str) -> float:
    value: Any = document
    for key in path:
        assert isinstance(value, dict) and key in value, f"missing {'.'.join(path)} (stopped at {key!r})"
        value = value[key]
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{'.'.join(path)} = {value!r}"
    assert math.isfinite(value), f"{'.'.join(path)} = {value!r}"
    return float(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Targets" in done.stdout, done.stdout[-3000:]
    return json.loads(out.read_text())


def test_every_section_ran_without_error(report: dict[str, Any]) -> None:
    results = report["results"]
    for section in ("overhead", "throughput", "slow", "coldstart", "media", "video", "usage", "image"):
        assert section in results, f"section {section} missing"
        text = json.dumps(results[section])
        assert '"error"' not in text, f"section {section} failed: {text[:1000]}"


def latency_keys(report: dict[str, Any]) -> set[str]:
    """The upstream latencies the plan measures overhead at (the smoke run: 20 ms only, one fleet)."""
    return {f"latency_{latency:g}ms" for latency in report["plan"]["latencies_ms"]}


def test_overhead_figures_for_every_latency_and_both_transports(report: dict[str, Any]) -> None:
    overhead = report["results"]["overhead"]
    assert "latency_20ms" in latency_keys(report)
    assert set(overhead) == latency_keys(report)
    for latency in overhead.values():
        assert set(latency) == {"http", "stdio"}
        for figures in latency.values():
            for who in ("direct", "bare", "bare_uvloop", "genroute", "genroute_minus_bare", "genroute_minus_direct"):
                for stat in ("p50_ms", "p95_ms", "p99_ms"):
                    _finite(figures, who, stat)
            _finite(figures, "genroute_minus_bare_uvloop", "p50_ms")
            for who in ("bare", "bare_uvloop", "genroute"):
                assert _finite(figures, who, "server_cpu_us_per_call") > 0
    # the 20 ms upstream shows up in the direct calls' latency: the emulator really waited
    assert _finite(overhead["latency_20ms"]["http"], "direct", "p50_ms") >= 20.0


def test_throughput_figures_with_zero_errors(report: dict[str, Any]) -> None:
    throughput = report["results"]["throughput"]
    assert set(throughput) == {"clients_1", "clients_16", "clients_64"}
    for row in throughput.values():
        for who in ("bare", "bare_uvloop", "genroute"):
            assert _finite(row, who, "calls_per_s") > 0
            assert row[who]["errors"] == 0, row[who].get("first_error")
        _finite(row, "genroute_vs_bare")
        _finite(row, "genroute_vs_bare_uvloop")


def test_slow_calls_all_complete_and_the_loop_is_probed(report: dict[str, Any]) -> None:
    slow = report["results"]["slow"]
    for who in ("bare", "genroute"):
        assert slow[who]["completed"] == slow[who]["calls"] > 0
        assert slow[who]["errors"] == 0
        assert slow[who]["healthz_probes"] > 0
        _finite(slow, who, "healthz_max_ms")
        # every call waited for the upstream's latency: they really were held
        assert _finite(slow, who, "call_p50_ms") >= slow["upstream_latency_ms"]


def test_cold_start_media_video_usage_figures(report: dict[str, Any]) -> None:
    results = report["results"]
    cold = results["coldstart"]
    for stage in ("", "tools_list_"):  # spawn -> initialize answered, and spawn -> tools/list answered
        for who in ("bare", "genroute"):
            for figure in ("median_ms", "min_ms", "p90_ms", "cpu_median_ms"):
                assert _finite(cold, who, stage + figure) > 0
        for figure in ("median_ms", "paired_median_ms", "min_ms", "cpu_paired_median_ms"):
            _finite(cold, "genroute_minus_bare", stage + figure)
        # tools/list comes after initialize in the same start, so it cannot have been answered sooner
        for who in ("bare", "genroute"):
            assert cold[who]["tools_list_min_ms"] >= cold[who]["min_ms"]
    for key in ("wall_ms", "peak_growth_bytes", "image_bytes", "peak_growth_over_image_bytes"):
        _finite(results["media"], key)
    for key in ("jobs", "cpu_ms_per_poll", "rss_growth_bytes"):
        _finite(results["video"], key)
    assert results["video"]["submit_failures"] == 0
    assert results["video"]["polls_in_window"] > 0
    for key in ("records", "get_usage_median_ms"):
        _finite(results["usage"], key)


def test_image_path_figures_four_ways(report: dict[str, Any]) -> None:
    image = report["results"]["image"]
    assert set(image) == {"photo_1024", "detailed_1024"}  # --quick: 1024 px only; the full run adds 2048
    for row in image.values():
        for way in ("direct", "bare", "preview", "link"):
            assert _finite(row, way, "p50_ms") > 0
            assert _finite(row, way, "result_bytes") > 0
        for way in ("bare", "preview", "link"):
            assert _finite(row, way, "server_cpu_us_per_call") > 0
        for figure in ("preview_over_link", "preview_over_bare", "preview_cpu_ms"):
            _finite(row, figure)
        # the bare forwarder inlines the whole PNG (the emulator's answer, re-encoded as base64 the same way);
        # genroute's preview stays within its 200 KB budget plus the result's text and links; "link" has no image
        assert row["bare"]["result_bytes"] > 1_000_000 and row["direct"]["result_bytes"] > 1_000_000
        assert 20_000 < row["preview"]["result_bytes"] < 215_000
        assert row["link"]["result_bytes"] < 5_000


def test_verdicts_cover_every_target(report: dict[str, Any]) -> None:
    verdicts = report["verdicts"]
    overhead = [f"overhead_{way}_{latency}_p50_ms" for latency in latency_keys(report) for way in ("http", "stdio")]
    for key in (
        *overhead,
        "throughput_clients_64_ratio",
        "slow_all_completed",
        "coldstart_minus_bare_ms",
        "media_peak_ratio",
        "usage_get_usage_ms",
        "image_photo_1024_preview_p50_ms",
        "image_photo_1024_preview_cpu_ms",
        "image_detailed_1024_preview_p50_ms",
        "image_detailed_1024_preview_cpu_ms",
    ):
        assert key in verdicts, key
        assert isinstance(verdicts[key]["ok"], bool)


@pytest.mark.parametrize("count", [2, 4, 6])
def test_interleaving_gives_no_target_a_head_start(count: int) -> None:
    """Every target leads a round equally often, and (from three targets on) none runs twice in a row across a
    round's edge: the reversed order it replaced ran its first and last target twice in a row every round."""
    from bench.overhead import rotated

    names = [f"t{index}" for index in range(count)]
    rounds = [rotated(names, round_no) for round_no in range(count * 10)]
    assert all(sorted(order) == names for order in rounds)
    leaders = [order[0] for order in rounds]
    assert all(leaders.count(name) == 10 for name in names)
    sequence = [name for order in rounds for name in order]
    repeats = [sequence[i] for i in range(1, len(sequence)) if sequence[i] == sequence[i - 1]]
    if count > 2:
        assert repeats == []
    else:  # two targets: each repeats at every other edge
        assert abs(repeats.count("t0") - repeats.count("t1")) <= 1
