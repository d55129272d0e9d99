"""The `genroute` command: serve (stdio or HTTP), models, usage, check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from mcp_server import __version__
from mcp_server.config import GatewayConfig, load_config
from mcp_server.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genroute", description="MCP gateway for AI generation.")
    parser.add_argument("--version", action="version", version=f"genroute {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $GENROUTE_CONFIG, else built-in defaults)")
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve MCP over stdio (default) or streamable HTTP")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")

    commands.add_parser("models", help="print the model catalog")
    from mcp_server.usage.command import add_usage_parser

    add_usage_parser(commands)
    commands.add_parser("check", help="validate the config and ask every provider whether it answers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"genroute: config error: {error}", file=sys.stderr)
        return 2

    from mcp_server.logs import configure_logging

    configure_logging(args.log_level, (p.api_key() for p in config.providers.values()))
    if args.command == "serve":
        return _serve(config, args)
    if args.command == "models":
        return _models(config)
    if args.command == "usage":
        from mcp_server.usage.command import usage_command

        return anyio.run(usage_command, config, args)
    return anyio.run(_check, config)


def _serve(config: GatewayConfig, args: argparse.Namespace) -> int:
    from mcp_server.gateway import Gateway
    from mcp_server.server import build_server

    if config.server.database_url:  # a database that is down: one clear line, not a startup traceback
        from mcp_server.store import probe_store

        problem = anyio.run(probe_store, config)
        if problem:
            print(f"genroute: {problem}", file=sys.stderr)
            return 2
    mcp = build_server(Gateway.from_config(config))
    if args.http:
        from mcp_server.http_app import serve_http

        serve_http(mcp, args.host, args.port, args.log_level)
    else:
        mcp.run("stdio")
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _models(config: GatewayConfig) -> int:
    from mcp_server.catalog import Catalog

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
    print(_table(["ID", "KIND", "PROVIDER", "UPSTREAM", "CONTEXT", "PRICE", "ALIASES"], rows))
    return 0


async def _check(config: GatewayConfig) -> int:
    from mcp_server.errors import GatewayError
    from mcp_server.gateway import Gateway

    print(f"config: ok ({config.source})")
    gateway = Gateway.from_config(config)
    failures = 0
    try:
        for name, adapter in gateway.router.adapters.items():
            provider = config.providers.get(name)
            if provider and provider.api_key_env and provider.api_key() is None:
                print(f"{name}: missing key: environment variable {provider.api_key_env} is not set")
                failures += 1
                continue
            try:
                with anyio.fail_after(30):
                    models = await adapter.list_models()
            except TimeoutError:
                print(f"{name}: unreachable: no answer within 30 s")
                failures += 1
            except GatewayError as error:
                verdict = (
                    "bad key"
                    if error.status in (401, 403)
                    else "unreachable"
                    if error.status in (502, 504)
                    else "error"
                )
                print(f"{name}: {verdict}: {error.message}")
                failures += 1
            else:
                print(f"{name}: ok ({len(models)} models listed)" if models else f"{name}: ok")
    finally:
        await gateway.aclose()
    return 1 if failures else 0
