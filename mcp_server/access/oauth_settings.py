"""`[http.oauth]`: the OAuth resource-server settings, a table of config.py's HttpConfig kept here beside the code
that uses them (access/oauth.py), as the media stores keep theirs. Credentials come from environment variables the
file names, never from the file."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OAuthConfig(BaseModel):
    """OAuth 2.1 resource-server mode: tokens that are not genroute keys are checked at the authorization
    server's RFC 7662 introspection endpoint, and must name `resource_url` as their audience."""

    model_config = ConfigDict(extra="forbid")

    issuer_url: str  # the authorization server, announced in the RFC 9728 metadata
    introspection_url: str
    resource_url: str  # this server's public MCP URL, e.g. https://genroute.example.com/mcp
    client_id_env: str | None = None  # genroute's own credentials at the introspection endpoint
    client_secret_env: str | None = None
    required_scopes: list[str] = Field(default_factory=list)
    admin_scope: str = "genroute:admin"
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # An active token's introspection answer is reused this long at most (never past its expiry); an inactive
    # one's for 60 s, so a flood of made-up tokens does not become one call to the authorization server each
    cache_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("issuer_url", "introspection_url", "resource_url")
    @classmethod
    def _is_http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a loopback test server)")
        return url

    def client_credentials(self) -> tuple[str, str] | None:
        """(client id, secret) from the environment, for HTTP Basic at the introspection endpoint."""
        client_id = os.environ.get(self.client_id_env or "") or None
        secret = os.environ.get(self.client_secret_env or "") or None
        return (client_id, secret) if client_id and secret else None
