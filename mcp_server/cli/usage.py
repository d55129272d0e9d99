"""`genroute usage`: the get_usage report from the configured store, printed as a table (or JSON)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_server.config import GatewayConfig
    from mcp_server.providers import ProviderAdapter
    from mcp_server.usage.report import ProviderFigures, UsageFigures, UsageReport

_COLUMNS = ("REQUESTS", "ERRORS", "PROMPT TOK", "COMPL TOK", "IMAGES", "VIDEO S", "CHARS", "AUDIO S", "COST USD")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = commands.add_parser("usage", help="print usage and spend from the ledger (same filters as get_usage)")
    usage.add_argument("--start", dest="start_date", help="first day (2024-01-01) or instant, UTC; default: 1st")
    usage.add_argument("--end", dest="end_date", help="last day, included, or an instant; default: now")
    usage.add_argument("--model", help="only this model (id or alias)")
    usage.add_argument("--caller", help="only this caller ('stdio' or an HTTP key's name)")
    usage.add_argument("--group-by", default="model", choices=["model", "day", "provider", "caller"])
    usage.add_argument("--source", default="local", choices=["local", "provider"], help="provider: add theirs too")
    usage.add_argument("--json", action="store_true", help="print get_usage's JSON instead of a table")


async def run(config: GatewayConfig, args: argparse.Namespace) -> int:
    from mcp_server.catalog import Catalog
    from mcp_server.errors import GatewayError
    from mcp_server.providers import build_adapter
    from mcp_server.providers.redact import redactor_for
    from mcp_server.store import StoreUnavailable, open_store_for
    from mcp_server.usage.report import build_report

    store = open_store_for(config)
    adapters: dict[str, ProviderAdapter] = {}
    try:
        await store.open()
        if args.source == "provider":
            redact = redactor_for(config)
            adapters = {name: build_adapter(name, cfg, redact) for name, cfg in config.providers.items()}
        report = await build_report(
            store,
            Catalog.from_config(config, include_local=False),
            monthly_usd=config.budget.monthly_usd,
            start_date=args.start_date,
            end_date=args.end_date,
            model=args.model,
            caller=args.caller,
            group_by=args.group_by,
            source=args.source,
            adapters=adapters,
        )
    except (GatewayError, StoreUnavailable) as error:
        print(f"genroute usage: {error}", file=sys.stderr)
        return 2
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
        await store.close()
    print(report.model_dump_json(indent=2, exclude_none=True) if args.json else render_report(report))
    return 0


def render_report(report: UsageReport) -> str:
    """The breakdown as aligned columns (numbers right-aligned), a total row, the budget and provider figures."""
    from mcp_server.cli.table import table
    from mcp_server.usage.summary import budget_line

    rows = [[key, *_cells(figures)] for key, figures in report.breakdown.items()]
    chosen = (("model", report.model), ("caller", report.caller))
    filters = "".join(f", {name} {value}" for name, value in chosen if value)
    out = [f"Usage {report.period.start} to {report.period.end} by {report.group_by}{filters}", ""]
    out.append(table([report.group_by.upper(), *_COLUMNS], rows, total=["TOTAL", *_cells(report)], right_from=1))
    out += ["", budget_line(report)]
    out += [provider_line(name, figures) for name, figures in (report.provider or {}).items()]
    return "\n".join(out)


def _cells(figures: UsageFigures) -> list[str]:
    return [
        f"{figures.requests:,}",
        f"{figures.errors:,}",
        f"{figures.prompt_tokens:,}",
        f"{figures.completion_tokens:,}",
        f"{figures.images:,}",
        f"{figures.video_seconds:,.1f}",
        f"{figures.characters:,}",
        f"{figures.audio_seconds:,.1f}",
        f"{figures.cost_usd:,.6f}",
    ]


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
