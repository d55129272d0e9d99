"""`genroute keys create|list|revoke`: what the commands print; the key logic is in keys.py."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `genroute` builds its parser before anything heavy is imported (cli/__init__.py)
    from mcp_server.config import GatewayConfig
    from mcp_server.store import ApiKeyRecord, Store


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="manage the API keys HTTP clients authenticate with")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (once: only its hash is kept)")
    create.add_argument("name", help="a name for the key's holder, shown in usage and logs")
    create.add_argument("--admin", action="store_true", help="may see every key's usage and jobs")
    create.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="tool calls per minute for this key (default: [http] rate_limit_per_min; 0 = unlimited)",
    )
    actions.add_parser("list", help="list keys (names, dates, id starts; never the keys or their hashes)")
    revoke = actions.add_parser("revoke", help="revoke a key at once, in every running server")
    revoke.add_argument("name")


async def run(config: GatewayConfig, args: argparse.Namespace) -> int:
    from mcp_server.errors import GatewayError
    from mcp_server.store import open_store_for

    store = open_store_for(config)
    await store.open()
    try:
        return await _dispatch(store, config, args)
    except GatewayError as error:
        print(f"genroute: {error.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _dispatch(store: Store, config: GatewayConfig, args: argparse.Namespace) -> int:
    from mcp_server.access import keys  # the SDK's auth types: imported only when a keys command runs

    if args.keys_action == "create":
        record, key = await keys.create_key(store, args.name, admin=args.admin, rate_limit_per_min=args.rate_limit)
        print(key)
        print(
            f"Created key '{record.name}'{' (admin)' if record.admin else ''}, "
            f"{_limit(record, config)}. This is the only time it is shown: store it now.\n"
            "Clients send it as the header  Authorization: Bearer <key>",
            file=sys.stderr,
        )
        return 0
    if args.keys_action == "revoke":
        record = await keys.revoke_key(store, args.name)
        print(f"Revoked key '{record.name}'.")
        return 0
    rows = [
        [
            k.name,
            _when(k.created_at),
            _when(k.revoked_at) if k.revoked else "-",
            "yes" if k.admin else "no",
            _limit(k, config),
            _when(k.last_used_at),
            k.id[:8],
        ]
        for k in await store.list_keys()
    ]
    if not rows:
        print("No keys yet. Create one: genroute keys create NAME")
        return 0
    from mcp_server.cli.table import table

    print(table(["NAME", "CREATED", "REVOKED", "ADMIN", "RATE LIMIT", "LAST USED", "ID"], rows))
    return 0


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def _limit(record: ApiKeyRecord, config: GatewayConfig) -> str:
    limit = config.http.rate_limit_per_min if record.rate_limit_per_min is None else record.rate_limit_per_min
    return "unlimited" if limit == 0 else f"{limit}/min"
