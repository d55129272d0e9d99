"""The configured media store: `[media] store` chooses the local store or the s3 store."""

from __future__ import annotations

from mcp_server.config import GatewayConfig
from mcp_server.errors import ConfigError
from mcp_server.media.stores.base import MediaStore, StoreSetupError
from mcp_server.media.stores.local import LocalStore

SPOOL_DIR = "media-spool"


def build_media_store(config: GatewayConfig) -> MediaStore:
    """The configured store. Raises ConfigError (s3 without its extra, or credentials not in the environment)."""
    server, media = config.server, config.media
    if media.store == "s3":
        from mcp_server.media.stores.s3 import S3MediaStore

        try:
            return S3MediaStore(media, server.resolved_data_dir() / SPOOL_DIR)
        except StoreSetupError as error:
            raise ConfigError(config.source, f"media.{error.key}", error.problem) from None
    return LocalStore(server.resolved_output_dir())
