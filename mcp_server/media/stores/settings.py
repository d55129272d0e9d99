"""`[media] store` and its S3 settings: a mixin of the `[media]` table (config.py's MediaConfig), kept here so the
media stores own their settings. Credentials come from environment variables the file names, never from the file."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

StoreKind = Literal["local", "s3"]


class StoreSettings(BaseModel):
    # "local": files under [server] output_dir (one machine, or a shared volume); "s3": an S3-compatible bucket
    store: StoreKind = "local"
    endpoint_url: str | None = None  # e.g. "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:8333"
    bucket: str | None = None
    region: str = "us-east-1"
    prefix: str = ""  # keys are "<prefix>/<media id>"
    access_key_env: str | None = None  # names of environment variables holding the credentials
    secret_key_env: str | None = None
    store_timeout_s: float = Field(default=60.0, gt=0, le=3600)  # one request to the store
    # GET /media/{id} and signed links answer 302 to a short-lived presigned URL of the store (clients must be able
    # to reach the store) instead of streaming the file through genroute
    presigned_redirects: bool = False

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a server on a private network)")
        return url.rstrip("/") if url else None

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, prefix: str) -> str:
        cleaned = prefix.strip("/")
        if ".." in cleaned.split("/") or "//" in cleaned:
            raise ValueError("must be a plain key prefix like 'genroute/media' (no '..', no empty parts)")
        return cleaned

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> StoreSettings:
        if self.store == "s3" and not self.bucket:
            raise ValueError('store = "s3" needs bucket = "<name>" (and endpoint_url unless it is AWS S3)')
        if self.presigned_redirects and self.store != "s3":
            raise ValueError('presigned_redirects needs store = "s3"')
        return self

    def credentials(self) -> tuple[str, str] | None:
        """(access key, secret) from the environment; None when no variables are named (the client's own chain)."""
        if not self.access_key_env and not self.secret_key_env:
            return None
        missing = [name for name in (self.access_key_env, self.secret_key_env) if not name or not os.environ.get(name)]
        if missing:
            raise ValueError(
                f"access_key_env and secret_key_env must both name set environment variables; "
                f"not set: {', '.join(str(name) for name in missing)}"
            )
        return os.environ[str(self.access_key_env)], os.environ[str(self.secret_key_env)]
