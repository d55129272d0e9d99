"""The running gateway: config, catalog, adapters and router, shared by every transport.

What a config builds (its catalog, adapters and router) is one immutable `Snapshot`. A reload (reload.py) builds
a new one and swaps it in whole; each request reads the snapshot it started with (`pinned`), so a call in flight
finishes on what it began with while new calls use the new one. The store, the media registry and the video jobs
live as long as the process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from mcp_server.catalog import Catalog, ModelCard, Pricing
from mcp_server.config import LOCAL_PROVIDER, GatewayConfig, ProviderConfig
from mcp_server.errors import GatewayError
from mcp_server.media.fetch import GuardedFetcher
from mcp_server.media.links import MediaLinks
from mcp_server.media.registry import MediaRegistry
from mcp_server.media.retention import prune_forever
from mcp_server.media.stores.configured import build_media_store
from mcp_server.observability.observed import build_observer
from mcp_server.observability.observer import Observer
from mcp_server.providers import ProviderAdapter, build_adapter, check_models
from mcp_server.providers.base import ProviderModel
from mcp_server.providers.redact import redactor_for
from mcp_server.reliability.attempts import Reliability
from mcp_server.reliability.health import Health
from mcp_server.reliability.health_file import HealthFile
from mcp_server.reliability.shared_cooldowns import share_cooldowns
from mcp_server.router import Router
from mcp_server.store import Store, open_store_for
from mcp_server.text import plural
from mcp_server.usage.accountant import Accountant
from mcp_server.video_jobs.engine import VideoJobs

log = logging.getLogger("genroute")


def _discovered(provider: str, model: ProviderModel) -> ModelCard:
    """A chat card for a model a provider lists, priced when the listing states its prices."""
    pricing = Pricing(input_usd_per_mtok=model.input_usd_per_mtok, output_usd_per_mtok=model.output_usd_per_mtok)
    return ModelCard(
        id=f"{provider}/{model.id}", kind="chat", provider=provider, upstream=model.id, pricing=pricing, discovered=True
    )


def health_dir(config: GatewayConfig) -> Path:
    return config.server.resolved_data_dir() / "health"


@dataclass(frozen=True)
class Snapshot:
    """What one config builds. `requests` counts the requests that started on it (reload.py waits for them)."""

    config: GatewayConfig
    catalog: Catalog
    router: Router
    requests: list[int] = field(default_factory=lambda: [0], compare=False)  # a cell: the snapshot is frozen

    @property
    def busy(self) -> bool:
        return self.requests[0] > 0 or self.router.in_flight > 0


def build_snapshot(
    config: GatewayConfig,
    store: Store,
    observer: Observer,
    *,
    reuse: dict[str, ProviderAdapter] | None = None,
    health: Health | None = None,
) -> Snapshot:
    """Catalog, adapters and router for `config`. An adapter in `reuse` whose provider's settings are unchanged is
    kept (its connections and key cooldowns with it); `health` carries provider health over a reload.
    Raises ConfigError when a model is of a kind its provider's adapter does not serve."""
    check_models(config)
    catalog = Catalog.from_config(config)
    providers = dict(config.providers)
    if any(card.provider == LOCAL_PROVIDER for card in catalog.cards()) and LOCAL_PROVIDER not in providers:
        providers[LOCAL_PROVIDER] = ProviderConfig(protocol="local")
    redact = redactor_for(config)
    adapters: dict[str, ProviderAdapter] = {}
    for name, cfg in providers.items():
        kept = (reuse or {}).get(name)
        adapters[name] = kept if kept is not None and kept.config == cfg else build_adapter(name, cfg, redact)
    pools = {name: adapter.keys for name, adapter in adapters.items()}
    reliability = Reliability(catalog, config.routing, providers, observer, pools, health=health)
    router = Router(catalog, adapters, reliability, Accountant(store, config.budget, observer), observer)
    return Snapshot(config, catalog, router)


_PINNED: ContextVar[Snapshot | None] = ContextVar("genroute_snapshot", default=None)


@dataclass
class Gateway:
    """What the tools and transports use: the router for every provider call, and beside it the services they read
    (provider health and adapters, the media registry and fetcher, video jobs, the store), each one attribute."""

    current: Snapshot
    store: Store
    health_file: HealthFile | None = field(default=None, repr=False)
    observer: Observer = field(default_factory=Observer, repr=False)
    links: MediaLinks | None = field(default=None, repr=False)  # signed media links: set by the HTTP app only
    media: MediaRegistry = field(init=False)
    fetcher: GuardedFetcher = field(init=False)
    jobs: VideoJobs = field(init=False)

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot this request started on (see `pinned`), else the current one."""
        return _PINNED.get() or self.current

    @property
    def config(self) -> GatewayConfig:
        return self.snapshot.config

    @property
    def catalog(self) -> Catalog:
        return self.snapshot.catalog

    @property
    def router(self) -> Router:
        return self.snapshot.router

    @property
    def adapters(self) -> dict[str, ProviderAdapter]:
        """By provider name (the router's)."""
        return self.snapshot.router.adapters

    @property
    def health(self) -> Health:
        """Every provider's recent outcomes and cooldowns (carried over a reload)."""
        return self.snapshot.router.reliability.health

    @contextmanager
    def pinned(self) -> Iterator[Snapshot]:
        """One request on the current snapshot, from start to end, whatever reloads meanwhile."""
        snapshot = self.current
        snapshot.requests[0] += 1
        token = _PINNED.set(snapshot)
        try:
            yield snapshot
        finally:
            _PINNED.reset(token)
            snapshot.requests[0] -= 1

    def swap(self, snapshot: Snapshot) -> Snapshot:
        """Make `snapshot` current (new requests and video jobs use it); the one it replaces."""
        old, self.current = self.current, snapshot
        self.jobs.router, self.jobs.catalog = snapshot.router, snapshot.catalog
        return old

    def __post_init__(self) -> None:
        server, media = self.config.server, self.config.media
        self.media = MediaRegistry(build_media_store(self.config))
        self.fetcher = GuardedFetcher(
            max_bytes=media.reference_max_bytes,
            timeout_s=media.reference_fetch_timeout_s,
            allow_private=media.reference_allow_private,
        )
        self.jobs = VideoJobs(
            store=self.store,
            router=self.router,
            catalog=self.catalog,
            registry=self.media,
            config=media,
            inputs_dir=server.resolved_data_dir() / "job-inputs",
        )

    @classmethod
    def from_config(cls, config: GatewayConfig, *, metrics: bool = False) -> Gateway:
        """`metrics`: keep Prometheus metrics (only `serve --http` serves them); traces follow OTEL_* variables.
        Raises ConfigError when a model is of a kind its provider's adapter does not serve."""
        store = open_store_for(config)
        observer = build_observer(metrics=metrics)
        return cls(current=build_snapshot(config, store, observer), store=store, observer=observer)

    @property
    def health_dir(self) -> Path:
        """Where serving processes leave their provider health for `genroute check`."""
        return health_dir(self.config)

    async def start(self) -> None:
        """Open the store, then add `discover = true` providers' own listings to the catalog."""
        await self.store.open()
        self.health_file = HealthFile(self.health_dir, self.health, list(self.adapters))
        self.health_file.attach()
        await discover(self.current)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Started, with a background task group for video job trackers (unfinished jobs resume here)."""
        await self.start()
        try:
            try:
                async with anyio.create_task_group() as group:
                    self.jobs.attach(group)
                    group.start_soon(share_cooldowns, self.health, self.store)
                    group.start_soon(self.media.run)  # the s3 store's uploads of spooled files
                    retention = self.config.server.media_retention_days
                    if retention is not None:
                        group.start_soon(prune_forever, self.store, self.media.store, retention)
                    try:
                        await self.jobs.resume_unfinished()
                        yield self
                    finally:
                        group.cancel_scope.cancel()
            finally:
                await self.jobs.detach()  # the trackers have stopped: their leases go, for a restart to resume
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self.health_file is not None:
            self.health_file.detach()
        await self.current.router.aclose()
        await self.fetcher.aclose()
        await self.media.aclose()
        await self.store.close()
        await self.observer.flush()


async def discover(snapshot: Snapshot) -> None:
    """Warn of unset key variables, and add `discover = true` providers' own listings to the snapshot's catalog."""
    missing_keys = snapshot.router.reliability.missing_keys
    for name, variable in missing_keys.items():
        log.warning(
            "provider %s: environment variable %s is not set; calls routed to it fail (missing_api_key) and go "
            "to their fallbacks",
            name,
            variable,
        )
    for name, provider in snapshot.config.providers.items():
        unset = [env for env in provider.key_envs() if env not in dict(provider.api_keys())]
        if unset and name not in missing_keys:
            log.warning("provider %s: %s not set; its other keys serve it", name, " and ".join(unset))
        if not provider.discover or name in missing_keys:
            continue
        try:
            models = await snapshot.router.adapters[name].list_models()
        except GatewayError as error:
            log.warning("discovery on provider %s failed: %s", name, error.message)
            continue
        cards = [_discovered(name, model) for model in models]
        for card in cards:
            snapshot.catalog.add(card)
        priced = sum(card.pricing.covers("chat") for card in cards)
        log.info("discovered %s on provider %s, %d with prices", plural(len(cards), "model"), name, priced)
