"""`genroute models`: the model catalog as a table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_server.config import GatewayConfig


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands.add_parser("models", help="print the model catalog")


def run(config: GatewayConfig) -> int:
    from mcp_server.catalog import Catalog
    from mcp_server.cli.table import table

    rows = []
    for card in Catalog.from_config(config).cards():
        p = card.pricing
        if card.kind == "chat":
            price = f"${p.input_usd_per_mtok or 0:g}/${p.output_usd_per_mtok or 0:g} per Mtok"
        elif card.kind == "image":
            price = f"${p.usd_per_image or 0:g}/image"
        else:
            price = f"${p.usd_per_second or 0:g}/s"
        rows.append(
            [
                card.id,
                card.kind,
                card.provider,
                card.upstream,
                str(card.context_window or "-"),
                price,
                ", ".join(card.aliases) or "-",
            ]
        )
    print(table(["ID", "KIND", "PROVIDER", "UPSTREAM", "CONTEXT", "PRICE", "ALIASES"], rows))
    return 0
