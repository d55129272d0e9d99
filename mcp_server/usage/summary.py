"""The usage report in one line: get_usage's text and the budget line under `genroute usage`'s table."""

from __future__ import annotations

from mcp_server.text import plural
from mcp_server.usage.cost import usd
from mcp_server.usage.report import BudgetFigures, UsageReport


def budget_line(report: UsageReport) -> str:
    line = _budget_text("Budget", report.budget, "[budget] monthly_usd")
    if report.key_budget is not None:
        line += " " + _budget_text("This key's budget", report.key_budget, "genroute keys update --monthly-usd")
    return line


def _budget_text(label: str, b: BudgetFigures, setting: str) -> str:
    if b.limit_usd is None or b.remaining_usd is None:
        return f"{label} {b.month}: {usd(b.spent_usd)} spent, no monthly limit set ({setting})."
    held = f", {usd(b.reserved_usd)} held by calls in flight" if b.reserved_usd else ""
    return f"{label} {b.month}: {usd(b.spent_usd)} spent of {usd(b.limit_usd)}, {usd(b.remaining_usd)} left{held}."


def summary_line(report: UsageReport) -> str:
    errors = f" ({report.errors:,} failed or refused)" if report.errors else ""
    media = ""
    if report.images:
        media += f", {plural(report.images, 'image')}"
    if report.video_seconds:
        media += f", {report.video_seconds:,.1f} s of video"
    if report.characters:
        media += f", {plural(report.characters, 'character')} spoken"
    if report.audio_seconds:
        media += f", {report.audio_seconds:,.1f} s of audio transcribed"
    return (
        f"{report.period.start} to {report.period.end}: {plural(report.requests, 'call')}{errors}, "
        f"{plural(report.tokens_used, 'token')}{media}, {usd(report.cost_usd)}. {budget_line(report)}"
    )
