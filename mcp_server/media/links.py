"""Signed media links: `{public_base_url}/media/{id}?exp=...&sig=...` opens without a key until `exp`.

Clients hand links to models and browsers that cannot send a bearer token (LangChain's MCP adapter passes a
resource_link's URI to the model provider as an image URL), so over HTTP every media result also carries a URL
that is its own credential: HMAC-SHA256 over the id and the expiry, with a secret generated once and kept in the
store, so every replica signs and checks alike. Over stdio there is no server to open it: no link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

import anyio
from mcp_types import ResourceLink
from pydantic import BaseModel, Field

from mcp_server.config import HttpConfig
from mcp_server.media.owners import remember
from mcp_server.media.registry import MediaItem
from mcp_server.store import Store, StoreUnavailable

log = logging.getLogger("genroute.media")
SECRET_NAME = "media_link_secret"
_PURPOSE = b"genroute media link v1\n"
Verdict = Literal["ok", "expired", "bad"]

# The scheme and Host of the HTTP request being served (validated by HostOriginGuard), for a default base URL
# that is the address the client reached. The SDK carries each request's context to its tool handler.
request_base: ContextVar[str | None] = ContextVar("genroute_request_base", default=None)


class SignedLink(BaseModel):
    url: str = Field(description="Opens the full file without a key (a browser, a model provider) until expires_at")
    expires_at: datetime


class MediaLinks:
    """Signs and checks media links. The secret is read from (or first written to) the store on first use."""

    def __init__(self, store: Store, http: HttpConfig, served_base: str) -> None:
        self._store = store
        self._http = http
        self._served_base = served_base.rstrip("/")
        self._secret: bytes | None = None
        self._lock = anyio.Lock()

    @property
    def links_are_urls(self) -> bool:
        """A result's resource_link is the signed URL (not media://) when a public base URL is configured."""
        return self._http.public_base_url is not None and self._http.resource_links == "signed"

    async def secret(self) -> bytes:
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    value = await self._store.shared_setting(SECRET_NAME, secrets.token_urlsafe(32))
                    self._secret = value.encode()
        return self._secret

    async def derived_key(self, purpose: str) -> bytes:
        """A key for another use of the same secret (dashboard sessions): never usable as a media signature."""
        return hmac.new(await self.secret(), f"genroute {purpose} v1".encode(), hashlib.sha256).digest()

    def base_url(self) -> str:
        return self._http.public_base_url or request_base.get() or self._served_base

    async def sign(self, media_id: str, *, now: float | None = None) -> SignedLink:
        expires = int((now if now is not None else time.time()) + self._http.media_link_ttl_s)
        signature = _signature(await self.secret(), media_id, expires)
        url = f"{self.base_url()}/media/{quote(media_id)}?exp={expires}&sig={signature}"
        return SignedLink(url=url, expires_at=datetime.fromtimestamp(expires, UTC))

    async def verify(self, media_id: str, exp: str, sig: str, *, now: float | None = None) -> Verdict:
        """ "ok"; "expired" for a genuine link past its time; "bad" for anything genroute did not sign."""
        if not exp.isdigit() or len(exp) > 12 or not sig or len(sig) > 64:
            return "bad"
        expected = _signature(await self.secret(), media_id, int(exp))
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return "bad"
        return "ok" if int(exp) > (now if now is not None else time.time()) else "expired"


def _signature(secret: bytes, media_id: str, expires: int) -> str:
    digest = hmac.new(secret, _PURPOSE + f"{media_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def signed_link(links: MediaLinks | None, item: MediaItem | None) -> SignedLink | None:
    """What every media tool calls: the item's signed link over HTTP, None over stdio (or without an item)."""
    if links is None or item is None:
        return None
    return await links.sign(item.id)


def resource_link(
    item: MediaItem, link: SignedLink | None, links: MediaLinks | None, *, title: str, description: str
) -> ResourceLink:
    """The result's link to the full file: media:// (readable through MCP), or the signed URL when
    `[http] public_base_url` is set and `[http] resource_links` is "signed"."""
    use_url = link is not None and links is not None and links.links_are_urls
    return ResourceLink(
        type="resource_link",
        uri=link.url if use_url and link is not None else item.uri,
        name=item.id,
        title=title,
        description=description,
        mime_type=item.mime_type,
        size=item.bytes,
    )


async def publish(
    store: Store, links: MediaLinks | None, item: MediaItem, *, caller: str, tool: str, model: str
) -> SignedLink | None:
    """What every media tool calls for each file it saved: record whose it is, and sign its link (over HTTP)."""
    await remember(store, item, caller=caller, tool=tool, model=model)
    try:
        return await signed_link(links, item)
    except StoreUnavailable as error:  # the secret could not be read: the result goes out without a link
        log.warning("media %s: no signed link (%s)", item.id, error)
        return None
