"""`genroute usage` and get_usage's text: the report as a table and as one line."""

from __future__ import annotations

from mcp_server.text import plural
from mcp_server.usage.cost import usd
from mcp_server.usage.report import BudgetFigures, ProviderFigures, UsageFigures, UsageReport

_COLUMNS = ("REQUESTS", "ERRORS", "PROMPT TOK", "COMPL TOK", "IMAGES", "VIDEO S", "COST USD")


def _cells(figures: UsageFigures) -> list[str]:
    return [
        f"{figures.requests:,}",
        f"{figures.errors:,}",
        f"{figures.prompt_tokens:,}",
        f"{figures.completion_tokens:,}",
        f"{figures.images:,}",
        f"{figures.video_seconds:,.1f}",
        f"{figures.cost_usd:,.6f}",
    ]


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
    return (
        f"{report.period.start} to {report.period.end}: {plural(report.requests, 'call')}{errors}, "
        f"{plural(report.tokens_used, 'token')}{media}, {usd(report.cost_usd)}. {budget_line(report)}"
    )


def render_table(report: UsageReport) -> str:
    """The breakdown as aligned columns (numbers right-aligned), a total row, the budget and provider figures."""
    headers = [report.group_by.upper(), *_COLUMNS]
    rows = [[key, *_cells(figures)] for key, figures in report.breakdown.items()]
    total = ["TOTAL", *_cells(report)]
    widths = [max(len(row[i]) for row in [headers, *rows, total]) for i in range(len(headers))]
    rule = ["-" * width for width in widths]

    def line(cells: list[str]) -> str:
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    chosen = (("model", report.model), ("caller", report.caller))
    filters = "".join(f", {name} {value}" for name, value in chosen if value)
    out = [f"Usage {report.period.start} to {report.period.end} by {report.group_by}{filters}", ""]
    out += [line(headers), line(rule), *(line(row) for row in rows)]
    out += [line(rule), line(total), "", budget_line(report)]
    out += [provider_line(name, figures) for name, figures in (report.provider or {}).items()]
    return "\n".join(out)


def provider_line(name: str, figures: ProviderFigures) -> str:
    if figures.error is not None or figures.usage is None:
        return f"Provider {name}: no report ({figures.error.message if figures.error else 'empty answer'})"
    u = figures.usage
    text = f"Provider {name}: {u.tokens_used or 0:,} tokens used"
    if u.tokens_included is not None:
        text += f" of {u.tokens_included:,} included"
    if u.estimated_overage_cost:
        text += f", estimated overage ${u.estimated_overage_cost:,.2f}"
    models = ", ".join(f"{model} {tokens:,}" for model, tokens in u.breakdown_by_model.items())
    return text + (f" (by model: {models})" if models else "")
