"""get_usage: what the agents have spent, from the local ledger and (optionally) the providers' own reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_server.access import identity
from mcp_server.access.principals import KEY_IDENTITY_PREFIX
from mcp_server.errors import Forbidden
from mcp_server.gateway import Gateway
from mcp_server.tools.results import guarded, ok
from mcp_server.usage.report import UsageReport, build_report
from mcp_server.usage.summary import summary_line

DESCRIPTION = (
    "Show usage and spend: calls, errors, tokens, images, video seconds, speech characters, audio seconds "
    "transcribed and cost in USD over a period, broken down by model, day, provider or caller, plus the "
    "monthly budget (limit, spent, remaining) and, for a key, its own (key_budget). Dates are ISO 8601 (UTC): a "
    "date covers its whole day; the default period is the current month. source='provider' also returns each "
    "provider's own usage report for the same period, where the provider offers one (admin keys only)."
)


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.tool(
        name="get_usage",
        description=DESCRIPTION,
        annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False),
    )
    @guarded
    async def get_usage(
        start_date: Annotated[
            str | None, Field(description="First day (2024-01-01) or instant (2024-01-01T00:00:00Z), UTC")
        ] = None,
        end_date: Annotated[str | None, Field(description="Last day, included (2024-01-31), or an instant")] = None,
        model: Annotated[str | None, Field(description="Only this model (id or alias)")] = None,
        caller: Annotated[str | None, Field(description="Only this caller: 'stdio' or an HTTP key's name")] = None,
        group_by: Annotated[
            Literal["model", "day", "provider", "caller"], Field(description="How to break the totals down")
        ] = "model",
        source: Annotated[
            Literal["local", "provider"],
            Field(description="'local': genroute's ledger; 'provider': also the providers' own figures (admins)"),
        ] = "local",
    ) -> Annotated[CallToolResult, UsageReport]:
        who = identity.current()
        if source == "provider" and not who.admin:
            raise Forbidden(
                "source='provider' returns the providers' own figures for every key's calls, so it is for admin "
                "keys only; use source='local' for this key's own usage.",
                param="source",
            )
        if not who.admin:  # a non-admin key sees its own usage only
            if caller and caller not in (who.name, who.id):
                raise Forbidden(
                    f"This key may only see its own usage (caller '{who.name}'); leave `caller` out.", param="caller"
                )
            caller = who.id
        report = await build_report(
            gateway.store,
            gateway.catalog,
            monthly_usd=gateway.config.budget.monthly_usd,
            start_date=start_date,
            end_date=end_date,
            model=model,
            caller=caller,
            group_by=group_by,
            source=source,
            adapters=gateway.adapters,
            key=(who.id, who.policy.monthly_usd) if who.id.startswith(KEY_IDENTITY_PREFIX) else None,
        )
        return ok(report, text=summary_line(report) + "\n\n" + report.model_dump_json(exclude_none=True))
