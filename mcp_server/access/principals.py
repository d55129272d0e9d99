"""Who jobs, usage, rate limits and sessions belong to: a stable identity per caller, and the names people read.

A key's identity is `key:<its id>`, never its name, so a key revoked and created again under the same name is
someone new and cannot read what the old one left. OAuth principals are `oauth-sub:<subject>` (a user) or, for a
token that names no subject (client credentials), `oauth-client:<client_id>`: a client whose id happens to equal a
user's subject is still not that user. `stdio` and `local` (`--no-auth`) are genroute's own callers; keys may not
take those names, and a key name cannot hold ':', so no name can spell another caller's identity.

No SDK imports here: `genroute usage` and `genroute keys` use this without loading the HTTP stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.access.policy import UNRESTRICTED, KeyPolicy
from mcp_server.store.base import ApiKeyRecord, Store
from mcp_server.store.usage import KEY_CALLER_PREFIX

STDIO = "stdio"
LOCAL = "local"
RESERVED_NAMES = frozenset({STDIO, LOCAL})
KEY_IDENTITY_PREFIX = KEY_CALLER_PREFIX
OAUTH_SUBJECT_PREFIX = "oauth-sub:"
OAUTH_CLIENT_PREFIX = "oauth-client:"
_SHORT_ID = 8  # the part of a key's id shown after '#' when several keys share a name


@dataclass(frozen=True)
class Caller:
    """Who a call is for. The tool layer reads it from the request (identity.py) and passes it down: the router,
    the ledger and the job engine never look at MCP or HTTP to find out."""

    id: str  # stable: `key:<key id>`, `oauth-sub:<sub>`, `oauth-client:<id>`, `stdio` or `local`
    name: str  # the key's name (or the identity where there is no other name)
    admin: bool  # may see everyone's usage and jobs
    policy: KeyPolicy = UNRESTRICTED  # the key's own budget, ceiling per call and models (access/policy.py)

    @property
    def jobs_scope(self) -> str | None:
        """Whose video jobs this caller may see: None (everyone's) for an admin, else its own."""
        return None if self.admin else self.id

    @classmethod
    def of_record(cls, identity: str, policy: KeyPolicy = UNRESTRICTED) -> Caller:
        """The caller a stored record (a job) names: its identity (and its key's limits, when looked up), for work
        done on its behalf later."""
        return cls(id=identity, name=identity, admin=False, policy=policy)


def key_identity(key_id: str) -> str:
    return KEY_IDENTITY_PREFIX + key_id


def oauth_identity(subject: str | None, client_id: str | None) -> str | None:
    """A user's tokens (any client) are the user; a token without a subject is its client."""
    if subject:
        return OAUTH_SUBJECT_PREFIX + subject
    if client_id:
        return OAUTH_CLIENT_PREFIX + client_id
    return None


def _labels(keys: list[ApiKeyRecord]) -> dict[str, str]:
    """Key identity -> its label: the name, or `name#<id start>` where the name alone is ambiguous (several keys
    have had it, or it is one of genroute's own callers' names, as keys created before that was refused are)."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key.name] = counts.get(key.name, 0) + 1
    return {
        key_identity(key.id): key.name
        if counts[key.name] == 1 and key.name not in RESERVED_NAMES
        else f"{key.name}#{key.id[:_SHORT_ID]}"
        for key in keys
    }


async def display_names(store: Store, identities: list[str]) -> dict[str, str]:
    """identity -> what a report shows. Keys by their labels; everything else (stdio, local, OAuth principals,
    names recorded before identities existed) as it is."""
    if not any(identity.startswith(KEY_IDENTITY_PREFIX) for identity in identities):
        return {identity: identity for identity in identities}
    labels = _labels(await store.list_keys(include_revoked=True))
    return {identity: labels.get(identity, identity) for identity in identities}


async def resolve_caller(store: Store, text: str) -> str:
    """The identity an admin's `caller` filter names: an identity as is; a label from a report (`name#<id start>`)
    that key; a key name the active key of that name, else the newest key that had it; anything else as given
    (a name recorded before identities existed)."""
    text = text.strip()
    if ":" in text or text in RESERVED_NAMES:
        return text
    name, _, short = text.partition("#")
    keys = [key for key in await store.list_keys(include_revoked=True) if key.name == name]
    if short:
        keys = [key for key in keys if key.id.startswith(short)]
    if not keys:
        return text
    active = [key for key in keys if not key.revoked]
    chosen = active[-1] if active else max(keys, key=lambda key: key.created_at)
    return key_identity(chosen.id)
