"""genroute's own API keys: `gr_` + 256 random bits, shown once, stored only as a SHA-256 hash.

Why a plain SHA-256 and not bcrypt/argon2: those slow hashes exist to protect low-entropy passwords from
guessing. A key here is 43 characters of `secrets.token_urlsafe(32)`, 256 bits from the OS's CSPRNG, so no
amount of guessing against a leaked hash succeeds, and a fast hash lets every request look its key up by an
index in one query instead of trying a slow comparison against every stored key.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp.server.auth.provider import AccessToken

from mcp_server.access.policy import KeyPolicy
from mcp_server.access.principals import RESERVED_NAMES, key_identity
from mcp_server.errors import NotFound, invalid_argument
from mcp_server.store import ApiKeyRecord, Store
from mcp_server.store.base import KEY_LIMIT_FIELDS

log = logging.getLogger("genroute.access")

KEY_PREFIX = "gr_"
ADMIN_SCOPE = "genroute:admin"
MAX_TOKEN_CHARS = 512  # longer bearer values are refused before any hashing or lookup
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOUCH_EVERY = timedelta(minutes=1)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise invalid_argument(
            "name",
            f"Key name {name[:80]!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit.",
        )
    if name.lower() in RESERVED_NAMES:
        raise invalid_argument(
            "name",
            f"Key name '{name}' is reserved: genroute names its own callers {' and '.join(sorted(RESERVED_NAMES))} "
            "(stdio and --no-auth). Pick another name.",
        )
    return name


MAX_MODEL_PATTERNS = 100
MAX_PATTERN_CHARS = 200


def check_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """A key's limits as given (any of KEY_LIMIT_FIELDS), checked: what each one allows when it is wrong."""
    rate = limits.get("rate_limit_per_min")
    if rate is not None and rate < 0:
        raise invalid_argument("rate_limit", "The rate limit is requests per minute: 0 (unlimited) or more.")
    for field, flag in (("monthly_usd", "monthly_usd"), ("max_usd_per_call", "max_usd_per_call")):
        value = limits.get(field)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise invalid_argument(flag, f"{flag} is an amount in USD, 0 or more; got {value}.")
    models = limits.get("models")
    if models is not None:
        patterns = [p.strip() for p in models if p.strip()]
        if len(patterns) > MAX_MODEL_PATTERNS or any(len(p) > MAX_PATTERN_CHARS for p in patterns):
            raise invalid_argument(
                "models",
                f"models takes at most {MAX_MODEL_PATTERNS} ids, aliases or globs of at most "
                f"{MAX_PATTERN_CHARS} characters each.",
            )
        limits = {**limits, "models": list(dict.fromkeys(patterns)) or None}  # none left: every model
    return limits


async def create_key(store: Store, name: str, **limits: Any) -> tuple[ApiKeyRecord, str]:
    """A new key: the record (as stored, hash only) and the key itself, which is never stored. `limits`: any of
    admin, rate_limit_per_min, monthly_usd, max_usd_per_call and models (store.base.KEY_LIMIT_FIELDS)."""
    check_name(name)
    limits = check_limits({k: v for k, v in limits.items() if k in KEY_LIMIT_FIELDS})
    key = new_key()
    record = ApiKeyRecord(id=uuid.uuid4().hex, name=name, key_hash=hash_key(key), **limits)
    return await store.create_key(record), key


async def update_key(store: Store, name: str, changes: dict[str, Any]) -> ApiKeyRecord:
    """Change some of an active key's limits (a None value lifts that limit); the key as it is now."""
    record = await store.update_key(name, check_limits(changes))
    if record is None:
        raise await _no_active_key(store, name)
    return record


async def revoke_key(store: Store, name: str) -> ApiKeyRecord:
    record = await store.revoke_key(name)
    if record is None:
        raise await _no_active_key(store, name)
    return record


async def _no_active_key(store: Store, name: str) -> NotFound:
    active = [k.name for k in await store.list_keys(include_revoked=False)]
    return NotFound(
        f"No active key named '{name}'. Active keys: {', '.join(active) or 'none'}.",
        code="key_not_found",
        param="name",
    )


class ApiKeyVerifier:
    """The SDK's TokenVerifier for genroute keys: looks the key's hash up in the store on every request, so a
    revocation (even by `genroute keys revoke` in another process) takes effect at once. PostgreSQL answers from a
    per-process cache kept true by change notifications (store/postgres_keycache.py)."""

    def __init__(self, store: Store, *, default_rate_limit_per_min: int, scopes: list[str] | None = None) -> None:
        self.store = store
        self.default_rate_limit_per_min = default_rate_limit_per_min
        self.scopes = list(scopes or [])
        self._touched: dict[str, datetime] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token.startswith(KEY_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        record = await self.store.find_key_by_hash(hash_key(token))
        if record is None:
            return None
        await self._touch(record)
        limit = record.rate_limit_per_min
        identity = key_identity(record.id)  # a re-created name is a new identity: see principals.py
        return AccessToken(
            token=identity,  # the key itself stays out of every object that outlives the request
            client_id=identity,  # what sessions, rate limits, jobs and usage belong to
            scopes=self.scopes + ([ADMIN_SCOPE] if record.admin else []),
            claims={
                "name": record.name,
                "genroute_key_id": record.id,
                "admin": record.admin,
                "rate_limit_per_min": self.default_rate_limit_per_min if limit is None else limit,
                "policy": KeyPolicy.of_record(record, identity),  # read on every request: updates apply at once
            },
        )

    async def _touch(self, record: ApiKeyRecord) -> None:
        """last_used_at, written at most once a minute per key so requests do not each cost a write."""
        now = datetime.now(UTC)
        last = self._touched.get(record.id)
        if last is not None and now - last < _TOUCH_EVERY:
            return
        self._touched[record.id] = now
        try:
            await self.store.touch_key(record.id, now)
        except Exception:  # informational only: never fail a request over it
            log.warning("could not record last use of key %s", record.name, exc_info=True)
