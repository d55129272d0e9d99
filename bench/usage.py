"""Section 6: get_usage over a month of ledger records, by the usage issue's own script (bench/bench_usage.py).

Run as a subprocess on the SQLite store (PostgreSQL too when GENROUTE_TEST_DATABASE_URL is set); the
figure kept is the slowest of its queries, since get_usage must be fast for every grouping.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import procs

SCRIPT = procs.ROOT / "bench" / "bench_usage.py"


def run(workdir: Path, records: int, repeats: int = 30) -> dict[str, Any]:
    if not SCRIPT.exists():
        raise FileNotFoundError(f"{SCRIPT.relative_to(procs.ROOT)} is not here yet (it lands with the usage issue)")
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "usage.json"
    args = [sys.executable, str(SCRIPT), "--records", str(records), "--repeats", str(repeats), "--out", str(out)]
    done = subprocess.run(args, cwd=procs.ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0 and not out.exists():
        raise RuntimeError(f"bench_usage.py exited {done.returncode}: {done.stderr[-500:]}")
    backends: dict[str, Any] = json.loads(out.read_text())["backends"]
    result: dict[str, Any] = {"records": records}
    for backend, data in backends.items():
        queries = data["queries"]
        slowest = max(queries, key=lambda label: queries[label]["p50_ms"])
        result[backend] = {
            "slowest_query": slowest,
            "p50_ms": queries[slowest]["p50_ms"],
            "p95_ms": max(q["p95_ms"] for q in queries.values()),
            "fill_s": data["fill_s"],
            "naive_scan_p50_ms": data.get("naive_ledger_scan", {}).get("p50_ms"),
        }
    first = result.get("sqlite") or next(v for k, v in result.items() if k != "records")
    result["get_usage_median_ms"] = first["p50_ms"]
    result["get_usage_p95_ms"] = first["p95_ms"]
    return result
