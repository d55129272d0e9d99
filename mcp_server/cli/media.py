"""`genroute media migrate --to s3|local`: copy every media file from the other store into the one named.

Moving from one store to the other (docs/media.md): fill in the `[media]` bucket settings, run this (files already
in the destination are skipped, so it can run again, and while the old store still serves), switch `[media] store`,
restart. Files are streamed through the stores' own interface; the source is left as it was.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_server.config import GatewayConfig
    from mcp_server.media.stores.base import MediaStore


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    media = commands.add_parser("media", help="manage the media store (migrate files between local and s3)")
    actions = media.add_subparsers(dest="media_command", required=True, metavar="ACTION")
    migrate = actions.add_parser("migrate", help="copy every media file into the store named by --to")
    migrate.add_argument("--to", required=True, choices=["s3", "local"], help="the destination store")


def _store(config: GatewayConfig, kind: str) -> MediaStore:
    from mcp_server.media.stores.configured import build_media_store

    media = config.media.model_copy(update={"store": kind, "presigned_redirects": False})
    return build_media_store(config.model_copy(update={"media": media}))


async def run(config: GatewayConfig, args: argparse.Namespace) -> int:
    from mcp_server.errors import ConfigError, GatewayError
    from mcp_server.media.registry import MediaRegistry

    if not config.media.bucket:
        print('genroute media migrate: set [media] bucket (and endpoint_url, region, prefix, access_key_env, '
              "secret_key_env) in the config first: the bucket is one side of the move", file=sys.stderr)  # fmt: skip
        return 2
    try:
        source = _store(config, "local" if args.to == "s3" else "s3")
        destination = _store(config, args.to)
    except ConfigError as error:
        print(f"genroute media migrate: {error}", file=sys.stderr)
        return 2
    copied = skipped = pending = 0
    try:
        async for media_id in source.ids():
            if await destination.stat(media_id) is not None:
                skipped += 1
                continue
            await MediaRegistry(destination).put(media_id, source.chunks(media_id))
            after = await destination.stat(media_id)
            pending += bool(after is not None and after.pending)
            copied += 1
    except GatewayError as error:
        print(f"genroute media migrate: {error.message} ({copied} copied so far; run it again)", file=sys.stderr)
        return 1
    finally:
        await source.aclose()
        await destination.aclose()
    print(f"copied {copied} media files to the {args.to} store, skipped {skipped} already there")
    if pending:
        print(f"{pending} could not be uploaded yet and wait in the spool: run this again, or start genroute serve "
              "with the s3 store (it uploads them)")  # fmt: skip
    return 1 if pending else 0
