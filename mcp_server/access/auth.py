"""Bearer authentication for the HTTP app, assembled from the SDK's own pieces.

BearerAuthBackend (under Starlette's AuthenticationMiddleware) turns the Authorization header into a user
through a TokenVerifier; AuthContextMiddleware exposes it to tools (see identity.py); RequireAuthMiddleware
answers 401 with WWW-Authenticate (naming the RFC 9728 metadata in OAuth mode). genroute adds only the
verifiers, the public-path exception and the per-key rate limit.
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken, TokenVerifier
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.access.ratelimit import RateLimiter, RateLimitMiddleware, TokenBucketLimiter

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


class _AuthGate:
    """Public paths pass; every other HTTP request needs an authenticated user and is rate limited."""

    def __init__(self, app: ASGIApp, protected: ASGIApp) -> None:
        self.app = app
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.protected(scope, receive, send)


def require_bearer(
    app: ASGIApp,
    verifier: TokenVerifier,
    *,
    required_scopes: list[str] | None = None,
    resource_metadata_url: AnyHttpUrl | None = None,
    limiter: RateLimiter | None = None,
) -> ASGIApp:
    protected = RequireAuthMiddleware(
        RateLimitMiddleware(app, limiter or TokenBucketLimiter()), list(required_scopes or []), resource_metadata_url
    )
    gated = AuthContextMiddleware(_AuthGate(app, protected))
    return AuthenticationMiddleware(gated, backend=BearerAuthBackend(verifier))
