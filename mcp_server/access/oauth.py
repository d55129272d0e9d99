"""OAuth 2.1 resource-server mode: bearer tokens checked at the authorization server's RFC 7662
introspection endpoint, bound to this server by their audience (RFC 8707), announced by RFC 9728 metadata."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import httpx2
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from pydantic import AnyHttpUrl
from starlette.routing import Route

from mcp_server.access.keys import KEY_PREFIX, MAX_TOKEN_CHARS
from mcp_server.access.oauth_settings import OAuthConfig
from mcp_server.access.principals import oauth_identity
from mcp_server.access.ratelimit import AuthFailureLimiter, request_address

log = logging.getLogger("genroute.access")

INVALID_CACHE_S = 60.0  # a refused token is not introspected again for this long
_CACHE_MAX = 10_000  # answers kept; the oldest go first


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class IntrospectionVerifier:
    """The SDK's TokenVerifier over RFC 7662: active, unexpired, and issued for `resource_url`."""

    def __init__(
        self, config: OAuthConfig, *, default_rate_limit_per_min: int, failures: AuthFailureLimiter | None = None
    ) -> None:
        self.config = config
        self.default_rate_limit_per_min = default_rate_limit_per_min
        self.failures = failures
        self._auth = config.client_credentials()
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(config.timeout_s), follow_redirects=False, trust_env=False
        )
        # sha256(token) -> (the answer: a token or None for refused, until when it is reused)
        self._cache: dict[str, tuple[AccessToken | None, float]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        """Answers are reused: an accepted token's until its expiry, at most `[oauth] cache_s`; a refused one's for
        INVALID_CACHE_S. An address over its failure limit gets no new introspection (a cached answer still
        counts), so made-up tokens cannot make genroute call the authorization server once per request."""
        if token.startswith(KEY_PREFIX) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        address = request_address.get()
        if self.failures is not None and address is not None and self.failures.blocked(address) > 0:
            return None
        answer = await self._introspect(token)
        if answer is None:  # the authorization server failed to answer: refused now, asked again next time
            return None
        access = self._access_token(answer)
        if access is None:
            self._remember(digest, None, now + INVALID_CACHE_S, now)
        else:
            self._remember(digest, access, min(now + self.config.cache_s, access.expires_at or math.inf), now)
        return access

    def _remember(self, digest: str, access: AccessToken | None, until: float, now: float) -> None:
        if until <= now:
            return
        self._cache.pop(digest, None)
        while len(self._cache) >= _CACHE_MAX:
            del self._cache[next(iter(self._cache))]  # the oldest answer
        self._cache[digest] = (access, until)

    async def _introspect(self, token: str) -> dict[str, Any] | None:
        url = self.config.introspection_url
        try:
            response = await self._client.post(
                url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
            )
        except httpx2.HTTPError as exc:
            log.warning("token introspection at %s failed: %s", url, type(exc).__name__)
            return None
        if response.status_code != 200:
            log.warning("token introspection at %s answered HTTP %d", url, response.status_code)
            return None
        try:
            data = response.json()
        except ValueError:
            log.warning("token introspection at %s answered with something other than JSON", url)
            return None
        return data if isinstance(data, dict) else None

    def _access_token(self, data: dict[str, Any]) -> AccessToken | None:
        if data.get("active") is not True:
            return None
        audiences = data.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences if isinstance(audiences, list) else []
        if not any(isinstance(a, str) and _same_url(a, self.config.resource_url) for a in audiences):
            log.info("refused a token issued for another audience")
            return None
        exp = data.get("exp")
        if isinstance(exp, int | float) and exp < time.time():
            return None
        scopes = str(data.get("scope") or "").split()
        subject = data.get("sub") if isinstance(data.get("sub"), str) else None
        client = data.get("client_id") if isinstance(data.get("client_id"), str) else None
        principal = oauth_identity(subject, client)  # a user and a client never share an identity
        if principal is None:
            log.info("refused a token that names neither a subject nor a client")
            return None
        return AccessToken(
            token="oauth",  # the token itself is not kept
            client_id=principal,
            scopes=scopes,
            expires_at=int(exp) if isinstance(exp, int | float) else None,
            resource=self.config.resource_url,
            subject=subject,
            claims={
                "iss": data.get("iss"),
                "name": principal,
                "admin": self.config.admin_scope in scopes,
                "rate_limit_per_min": self.default_rate_limit_per_min,
            },
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def metadata_routes(config: OAuthConfig) -> list[Route]:
    """RFC 9728 protected-resource metadata, at /.well-known/oauth-protected-resource/<resource path>."""
    return create_protected_resource_routes(
        resource_url=AnyHttpUrl(config.resource_url),
        authorization_servers=[AnyHttpUrl(config.issuer_url)],
        scopes_supported=config.required_scopes or None,
        resource_name="genroute",
    )


def metadata_url(config: OAuthConfig) -> AnyHttpUrl:
    return build_resource_metadata_url(AnyHttpUrl(config.resource_url))
