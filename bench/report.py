"""The bench's printed table: every figure from the JSON document, grouped by section."""

from __future__ import annotations

import math
from typing import Any


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("ok" if value else "MISS")
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return out


def _percentiles(figure: dict[str, Any]) -> str:
    return "/".join(_fmt(figure[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))


def describe(error: BaseException) -> str:
    """An error as one line; a task group's errors by their leaves (the group's own text says only how many)."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def _error(section: Any) -> str | None:
    return section.get("error") if isinstance(section, dict) else None


def render(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        f"genroute bench ({document['mode']}): {m['nproc']} cores, {m['cpu']}, Python {m['python']}, "
        f"commit {m['commit'] or '?'}; load average {m['loadavg_start']} -> {m['loadavg_end']}",
        "",
    ]
    results = document["results"]
    published = document["published"]

    overhead = results.get("overhead", {})
    if overhead:
        lines.append(
            "1. Overhead, one client, ms: (a) direct httpx2, (b) bare SDK forwarder, (c) genroute; "
            "(b') the bare forwarder on uvloop, as genroute runs"
        )
        rows = []
        for latency, by_transport in overhead.items():
            if _error(by_transport):
                rows.append([latency, "-", _error(by_transport) or "", *[""] * 8])
                continue
            for transport, f in by_transport.items():
                if _error(f):
                    rows.append([latency, transport, _error(f) or "", *[""] * 8])
                    continue
                cb, ca = f["genroute_minus_bare"], f["genroute_minus_direct"]
                rows.append(
                    [
                        latency,
                        transport,
                        *(_percentiles(f[k]) for k in ("direct", "bare", "genroute")),
                        _percentiles(cb),
                        _fmt(f.get("genroute_minus_bare_uvloop", {}).get("p50_ms")),
                        f"{_fmt(ca['p50_ms'])}",
                        _fmt(f["bare"].get("server_cpu_us_per_call"), 0),
                        _fmt(f["genroute"].get("server_cpu_us_per_call"), 0),
                        _fmt(cb.get("round_spread_ms")),
                    ]
                )
        lines += _table(
            [
                "upstream",
                "transport",
                "(a) p50/95/99",
                "(b) p50/95/99",
                "(c) p50/95/99",
                "(c)-(b) p50/95/99",
                "(c)-(b') p50",
                "(c)-(a) p50",
                "(b) cpu us",
                "(c) cpu us",
                "(c)-(b) round spread",
            ],
            rows,
        )
        lines.append(
            f"   published HTTP-gateway overhead on a localhost mock: Portkey {published['portkey_oss_ms']} ms, "
            f"LiteLLM {published['litellm_ms']} ms, Rust/Go {published['rust_go_gateways_ms']}"
        )
        lines.append("")

    tp = results.get("throughput", {})
    if tp:
        lines.append("2. Throughput over HTTP, tool calls/s (errors), server CPU us per call")
        if _error(tp):
            lines.append(f"   error: {_error(tp)}")
        else:
            lines += _throughput_table(tp)
            sdk = published["python_mcp_sdk_calls_per_s"]
            lines.append(f"   published: a Python MCP server on the SDK serves {sdk}")
        lines.append("")

    slow = results.get("slow", {})
    if slow:
        lines.append(f"   slow calls: {slow.get('upstream_latency_ms', '?')} ms upstream, all at once")
        if _error(slow):
            lines.append(f"   error: {_error(slow)}")
        else:
            rows = [
                [
                    name,
                    f"{s['completed']}/{s['calls']}",
                    str(s["errors"]),
                    _fmt(s["wall_s"]),
                    _fmt(s["call_max_ms"], 0),
                    _fmt(s["healthz_p50_ms"]),
                    _fmt(s["healthz_max_ms"]),
                ]
                for name, s in slow.items()
                if isinstance(s, dict)
            ]
            lines += _table(
                ["server", "completed", "errors", "wall s", "slowest call ms", "loop probe p50 ms", "probe max ms"],
                rows,
            )
        lines.append("")

    media = results.get("media")
    if media:
        lines.append("3. Media: 4096x4096 PNG as b64 -> preview + saved file")
        lines.append(f"   {_kv(media)}")
        lines.append("")
    video = results.get("video")
    if video:
        lines.append("4. Video: jobs tracked by one server process")
        lines.append(f"   {_kv(video)}")
        lines.append("")

    cold = results.get("coldstart")
    if cold:
        lines.append("5. Cold start over stdio, ms: spawn -> initialize answered; spawn -> tools/list answered")
        if _error(cold):
            lines.append(f"   error: {_error(cold)}")
        else:
            lines += _table(["server", "figure", "median", "min", "p90", "cpu median"], _cold_rows(cold))
            delta = cold["genroute_minus_bare"]
            for stage, prefix in (("initialize", ""), ("tools/list", "tools_list_")):
                lines.append(
                    f"   (c)-(b) to {stage}: paired median {_fmt(delta[prefix + 'paired_median_ms'], 1)}"
                    f" (median of the per-round differences), difference of medians"
                    f" {_fmt(delta[prefix + 'median_ms'], 1)}, CPU paired median"
                    f" {_fmt(delta[prefix + 'cpu_paired_median_ms'], 1)}"
                )
        lines.append("")

    usage = results.get("usage")
    if usage:
        lines.append("6. Usage: get_usage over the ledger")
        lines.append(f"   {_kv(usage)}")
        lines.append("")

    image = results.get("image")
    if image:
        lines += _image_lines(image)

    for name, title in (("generations", "8. Protocol generations"), ("team", "9. Team configuration")):
        if results.get(name):
            lines += _generation_lines(f"{title}: (c)/(b) p50, one client at a time", results[name])

    verdicts = document.get("verdicts", {})
    if verdicts:
        lines.append("Targets")
        rows = [[k, _fmt(v["value"]), _fmt(v["target"]), "ok" if v["ok"] else "MISS"] for k, v in verdicts.items()]
        lines += _table(["figure", "measured", "target", ""], rows)
    return "\n".join(lines)


def _throughput_table(tp: dict[str, Any]) -> list[str]:
    rows = [
        [
            clients.removeprefix("clients_"),
            f"{_fmt(row['bare']['calls_per_s'], 1)} ({row['bare']['errors']})",
            f"{_fmt(row['genroute']['calls_per_s'], 1)} ({row['genroute']['errors']})",
            _fmt(row["genroute_vs_bare"], 3),
            _fmt(row.get("genroute_vs_bare_uvloop"), 3),
            _fmt(row["bare"]["server_cpu_us_per_call"], 0),
            _fmt(row["genroute"]["server_cpu_us_per_call"], 0),
        ]
        for clients, row in tp.items()
    ]
    headers = ["clients", "(b) calls/s", "(c) calls/s", "(c)/(b)", "(c)/(b')", "(b) cpu us", "(c) cpu us"]
    return _table(headers, rows)


def _generation_lines(title: str, section: dict[str, Any]) -> list[str]:
    """Sections 8 and 9: per transport and protocol generation, the p50 ratio beside server CPU per call."""
    lines = [title]
    if _error(section):
        return [*lines, f"   error: {_error(section)}", ""]
    rows = [
        [
            transport,
            generation,
            _fmt(figures["p50_ratio"], 3),
            _fmt(figures["bare_p50_ms"]),
            _fmt(figures["genroute_p50_ms"]),
            _fmt(figures["bare_cpu_us_per_call"], 0),
            _fmt(figures["genroute_cpu_us_per_call"], 0),
        ]
        for transport in ("http", "stdio")
        if transport in section
        for generation, figures in section[transport]["ratios"].items()
    ]
    headers = ["transport", "client", "(c)/(b) p50", "(b) p50 ms", "(c) p50 ms", "(b) cpu us", "(c) cpu us"]
    lines += _table(headers, rows)
    if section.get("throughput"):
        lines.append("   throughput over HTTP:")
        lines += _throughput_table(section["throughput"])
    return [*lines, ""]


def _cold_rows(cold: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in ("bare", "genroute"):
        for stage, prefix in (("initialize", ""), ("tools/list", "tools_list_")):
            figures = [cold[name][prefix + key] for key in ("median_ms", "min_ms", "p90_ms", "cpu_median_ms")]
            rows.append([name, stage, *(_fmt(value, 1) for value in figures)])
    return rows


def _kv(section: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in section.items() if not isinstance(v, dict | list))


def _image_lines(image: dict[str, Any]) -> list[str]:
    lines = [
        "7. Image path, one client: (a) direct httpx2, (b) bare SDK forwarder (full image inline), "
        '(c) genroute output="preview", (d) genroute output="link"'
    ]
    ways = ("direct", "bare", "preview", "link")
    rows = []
    for key, row in image.items():
        if key == "error":
            continue
        if _error(row):
            rows.append([key, _error(row) or "", *[""] * 5])
            continue
        rows.append(
            [
                key,
                " / ".join(_fmt(row[way]["p50_ms"], 1) for way in ways),
                f"{_fmt(row['preview_over_link'])} / {_fmt(row['preview_over_bare'])}",
                " / ".join(_fmt(row[way]["server_cpu_us_per_call"] / 1000, 1) for way in ways[1:]),
                _fmt(row["preview_cpu_ms"], 1),
                " / ".join(f"{row[way]['result_bytes'] / 1000:.0f}" for way in ways),
            ]
        )
    headers = ["image", "p50 ms (a)/(b)/(c)/(d)", "(c)/(d) (c)/(b)", "cpu ms (b)/(c)/(d)", "preview cpu ms"]
    lines += _table([*headers, "result KB (a)/(b)/(c)/(d)"], rows)
    lines.append("   preview cpu = (c) - (d): the same call without the preview; targets on 1024 px")
    if _error(image):
        lines.append(f"   error: {_error(image)}")
    return [*lines, ""]
