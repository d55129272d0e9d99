"""A key's own limits, as the layers below the tools use them: its monthly budget, its ceiling per call and the
models it may use. Read from the key's record on every request (access/keys.py), so `genroute keys update` takes
effect on the key's next call, and carried down on the `Caller` (principals.py): the router, the accountant and
the catalog's readers ask the policy, never the store or the request.

No SDK imports here: the router and the accountant use it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from mcp_server.catalog import ModelCard
from mcp_server.store.base import ApiKeyRecord, Store
from mcp_server.store.usage import KEY_CALLER_PREFIX, KeyBudget

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class KeyPolicy:
    """What one key may do beyond the gateway's own limits. The default (no key, or a key without limits) allows
    everything the config allows."""

    key: str = ""  # the key's name, for refusals
    caller: str = ""  # the key's identity, `key:<id>`: whose month a budget counts
    monthly_usd: float | None = None
    max_usd_per_call: float | None = None
    models: tuple[str, ...] | None = None  # ids, aliases or globs; None: every model

    @classmethod
    def of_record(cls, record: ApiKeyRecord, caller: str) -> KeyPolicy:
        models = tuple(record.models) if record.models else None
        if record.monthly_usd is None and record.max_usd_per_call is None and models is None:
            return UNRESTRICTED
        return cls(record.name, caller, record.monthly_usd, record.max_usd_per_call, models)

    @property
    def restricts_models(self) -> bool:
        return self.models is not None

    @property
    def budget(self) -> KeyBudget | None:
        """The key's month as the store reserves against it, when the key has a monthly budget."""
        return None if self.monthly_usd is None else KeyBudget(self.caller, self.monthly_usd)

    @cached_property
    def _exact(self) -> frozenset[str]:
        return frozenset(p for p in self.models or () if not _GLOB & set(p))

    @cached_property
    def _globs(self) -> tuple[str, ...]:
        return tuple(p for p in self.models or () if _GLOB & set(p))

    def allows(self, card: ModelCard) -> bool:
        """True when a pattern names the model: its id, an alias or `provider/upstream`, exactly or by glob."""
        if self.models is None:
            return True
        names = (card.id, f"{card.provider}/{card.upstream}", *card.aliases)
        if any(name in self._exact for name in names):
            return True
        return any(fnmatch.fnmatchcase(name, glob) for glob in self._globs for name in names)

    def visible(self, cards: Iterable[ModelCard]) -> list[ModelCard]:
        return [card for card in cards if self.allows(card)]


UNRESTRICTED = KeyPolicy()


async def policy_of(store: Store, caller: str) -> KeyPolicy:
    """The limits of the key a stored record names (a video job submitted after its request ended): read afresh,
    so they are the key's limits now. Not a key, or a key since revoked: the gateway's limits only."""
    if not caller.startswith(KEY_CALLER_PREFIX):
        return UNRESTRICTED
    key_id = caller.removeprefix(KEY_CALLER_PREFIX)
    record = next((k for k in await store.list_keys(include_revoked=False) if k.id == key_id), None)
    return UNRESTRICTED if record is None else KeyPolicy.of_record(record, caller)
