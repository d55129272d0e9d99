"""`genroute keys create|update|list|revoke`: what the commands print; the key logic is in keys.py."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `genroute` builds its parser before anything heavy is imported (cli/__init__.py)
    from mcp_server.config import GatewayConfig
    from mcp_server.store import ApiKeyRecord, Store


_NONE = ("none", "default", "")
_EVERY_MODEL = ("all", "*", "")


def _usd(text: str) -> float | None:
    """--monthly-usd / --max-usd-per-call: an amount, or `none` to lift the limit."""
    if text.strip().lower() in _NONE:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an amount in USD like 5 or 0.25, or 'none'; got '{text}'") from None


def _rate(text: str) -> int | None:
    """--rate-limit: calls per minute, or `default` for [http] rate_limit_per_min."""
    if text.strip().lower() in _NONE:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"calls per minute (0 = unlimited) or 'default'; got '{text}'") from None


def _patterns(text: str) -> list[str] | None:
    """--models: comma-separated ids, aliases or globs; `all` for every model."""
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    return None if text.strip().lower() in _EVERY_MODEL or not patterns else patterns


def _limit_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The options `create` and `update` share; `update` changes only those given."""
    keep = {"default": argparse.SUPPRESS} if update else {}
    if update:
        parser.add_argument(
            "--admin", action=argparse.BooleanOptionalAction, help="may see every key's usage and jobs", **keep
        )
    else:
        parser.add_argument("--admin", action="store_true", help="may see every key's usage and jobs")
    parser.add_argument(
        "--rate-limit",
        dest="rate_limit_per_min",
        type=_rate,
        metavar="N",
        help="tool calls per minute for this key ('default': [http] rate_limit_per_min; 0 = unlimited)",
        **keep,
    )
    parser.add_argument(
        "--monthly-usd",
        type=_usd,
        metavar="X",
        help="this key's own monthly budget in USD, on top of [budget] monthly_usd ('none' lifts it)",
        **keep,
    )
    parser.add_argument(
        "--max-usd-per-call",
        type=_usd,
        metavar="X",
        help="the most one call of this key may cost, on top of each model's max_usd_per_call ('none' lifts it)",
        **keep,
    )
    parser.add_argument(
        "--models",
        type=_patterns,
        metavar="PATTERN[,PATTERN...]",
        help="the only models this key may see and use: ids, aliases or globs like 'gpt-5.*' ('all': every one)",
        **keep,
    )


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="manage the API keys HTTP clients authenticate with")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (once: only its hash is kept)")
    create.add_argument("name", help="a name for the key's holder, shown in usage and logs")
    _limit_options(create, update=False)
    update = actions.add_parser("update", help="change a key's limits; running servers apply them on its next call")
    update.add_argument("name")
    _limit_options(update, update=True)
    actions.add_parser("list", help="list keys, their limits and this month's spend (never the keys or hashes)")
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
    from mcp_server.store.base import KEY_LIMIT_FIELDS

    given = {field: value for field, value in vars(args).items() if field in KEY_LIMIT_FIELDS}
    if args.keys_action == "create":
        record, key = await keys.create_key(store, args.name, **given)
        print(key)
        print(
            f"Created key '{record.name}'{' (admin)' if record.admin else ''}, {_limits(record, config)}. "
            "This is the only time it is shown: store it now.\n"
            "Clients send it as the header  Authorization: Bearer <key>",
            file=sys.stderr,
        )
        _warn_unmatched(record, config)
        return 0
    if args.keys_action == "update":
        if not given:
            print(
                "genroute: nothing to change: pass --admin/--no-admin, --rate-limit, --monthly-usd, "
                "--max-usd-per-call or --models.",
                file=sys.stderr,
            )
            return 2
        record = await keys.update_key(store, args.name, given)
        print(f"Updated key '{record.name}'{' (admin)' if record.admin else ''}: {_limits(record, config)}.")
        _warn_unmatched(record, config)
        return 0
    if args.keys_action == "revoke":
        record = await keys.revoke_key(store, args.name)
        print(f"Revoked key '{record.name}'.")
        return 0
    return await _list(store, config)


async def _list(store: Store, config: GatewayConfig) -> int:
    from mcp_server.access.principals import key_identity
    from mcp_server.store.usage import UsageQuery, month_of, utcnow

    listed = await store.list_keys()
    if not listed:
        print("No keys yet. Create one: genroute keys create NAME")
        return 0
    now = utcnow()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = (await store.usage_summary(UsageQuery(start=start, end=now, group_by="caller"))).breakdown
    rows = [
        [
            k.name,
            _when(k.created_at),
            _when(k.revoked_at) if k.revoked else "-",
            "yes" if k.admin else "no",
            _rate_text(k, config),
            "-" if k.monthly_usd is None else f"${k.monthly_usd:,.2f}",
            f"${spent[key_identity(k.id)].cost_usd:,.4f}" if key_identity(k.id) in spent else "$0.0000",
            "-" if k.max_usd_per_call is None else f"${k.max_usd_per_call:,.4f}",
            ",".join(k.models) if k.models else "all",
            _when(k.last_used_at),
            k.id[:8],
        ]
        for k in listed
    ]
    from mcp_server.cli.table import table

    headers = ["NAME", "CREATED", "REVOKED", "ADMIN", "RATE LIMIT", "MONTHLY", f"SPENT {month_of(now)}"]
    print(table([*headers, "PER CALL", "MODELS", "LAST USED", "ID"], rows))
    return 0


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def _rate_text(record: ApiKeyRecord, config: GatewayConfig) -> str:
    limit = config.http.rate_limit_per_min if record.rate_limit_per_min is None else record.rate_limit_per_min
    return "unlimited" if limit == 0 else f"{limit}/min"


def _limits(record: ApiKeyRecord, config: GatewayConfig) -> str:
    """The key's limits in one phrase, for create and update."""
    parts = [f"rate limit {_rate_text(record, config)}"]
    if record.monthly_usd is not None:
        parts.append(f"monthly budget ${record.monthly_usd:,.2f}")
    if record.max_usd_per_call is not None:
        parts.append(f"at most ${record.max_usd_per_call:,.4f} a call")
    parts.append(f"models {', '.join(record.models)}" if record.models else "every model")
    return ", ".join(parts)


def _warn_unmatched(record: ApiKeyRecord, config: GatewayConfig) -> None:
    """A pattern that names no configured model is most likely a typo; it is kept (a provider's `discover`
    may list such a model later) but said."""
    if not record.models:
        return
    from mcp_server.access.policy import KeyPolicy
    from mcp_server.catalog import Catalog

    cards = Catalog.from_config(config).cards()
    for pattern in record.models:
        if not KeyPolicy(models=(pattern,)).visible(cards):
            print(
                f"genroute: note: --models pattern '{pattern}' matches no model in the config (ids, aliases or "
                "provider/upstream); a discovered model may still match it.",
                file=sys.stderr,
            )
