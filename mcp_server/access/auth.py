"""Bearer authentication for the HTTP app, assembled from the SDK's own pieces.

BearerAuthBackend (under Starlette's AuthenticationMiddleware) turns the Authorization header into a user
through a TokenVerifier; AuthContextMiddleware exposes it to tools (see identity.py); RequireAuthMiddleware
answers 401 with WWW-Authenticate (naming the RFC 9728 metadata in OAuth mode). genroute adds the verifiers, the
public-path exception, the per-key rate limit on tool calls and the per-address limit on failed authentication.
"""

from __future__ import annotations

import math
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken, TokenVerifier
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.access.ratelimit import (
    AuthFailureLimiter,
    RateLimiter,
    RateLimitMiddleware,
    TokenBucketLimiter,
    address_of,
    request_address,
    too_many_failures,
)

PUBLIC_PATHS = frozenset({"/healthz"})
PUBLIC_PREFIXES = ("/.well-known/",)


class ChainVerifier:
    """The first verifier that accepts the token wins (genroute keys, then OAuth introspection)."""

    def __init__(self, *verifiers: TokenVerifier) -> None:
        self.verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            access = await verifier.verify_token(token)
            if access is not None:
                return access
        return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class _AddressedBackend(BearerAuthBackend):
    """The SDK's backend, with the client's address made known to the verifiers while they run (introspection is
    not asked on behalf of an address over its failure limit)."""

    async def authenticate(self, conn: HTTPConnection) -> Any:
        token = request_address.set(address_of(conn.scope))
        try:
            return await super().authenticate(conn)
        finally:
            request_address.reset(token)


class _AuthGate:
    """Public paths pass; every other HTTP request needs an authenticated user and is rate limited. A request that
    did not authenticate counts against its address: over `auth_failures_per_min` it gets 429, not 401."""

    def __init__(
        self, app: ASGIApp, protected: ASGIApp, failures: AuthFailureLimiter, also_public: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.protected = protected
        self.failures = failures
        self.also_public = also_public  # paths the config makes public (`[metrics] public = true`: /metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]) or scope["path"] in self.also_public:
            await self.app(scope, receive, send)
            return
        if not isinstance(scope.get("user"), AuthenticatedUser):
            wait = self.failures.failed(address_of(scope))
            if wait > 0:
                await too_many_failures(send, math.ceil(wait), self.failures.per_minute)
                return
        await self.protected(scope, receive, send)


def require_bearer(
    app: ASGIApp,
    verifier: TokenVerifier,
    *,
    required_scopes: list[str] | None = None,
    resource_metadata_url: AnyHttpUrl | None = None,
    limiter: RateLimiter | None = None,
    failures: AuthFailureLimiter | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    also_public: frozenset[str] = frozenset(),
) -> ASGIApp:
    limited = RateLimitMiddleware(app, limiter or TokenBucketLimiter(), max_body_bytes)
    protected = RequireAuthMiddleware(limited, list(required_scopes or []), resource_metadata_url)
    gated = AuthContextMiddleware(_AuthGate(app, protected, failures or AuthFailureLimiter(60), also_public))
    return AuthenticationMiddleware(gated, backend=_AddressedBackend(verifier))
