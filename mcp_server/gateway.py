"""The running gateway: config, catalog, adapters and router, built once and shared by every transport."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp_server.catalog import Catalog, ModelCard
from mcp_server.config import LOCAL_PROVIDER, GatewayConfig, ProviderConfig
from mcp_server.errors import GatewayError
from mcp_server.providers import ProviderAdapter, build_adapter
from mcp_server.router import Router
from mcp_server.store import Store, open_store_for
from mcp_server.usage.accountant import Accountant

log = logging.getLogger("genroute")


@dataclass
class Gateway:
    config: GatewayConfig
    catalog: Catalog
    router: Router
    store: Store

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Gateway:
        catalog = Catalog.from_config(config)
        providers = dict(config.providers)
        if any(card.provider == LOCAL_PROVIDER for card in catalog.cards()) and LOCAL_PROVIDER not in providers:
            providers[LOCAL_PROVIDER] = ProviderConfig(protocol="local")
        adapters: dict[str, ProviderAdapter] = {name: build_adapter(name, cfg) for name, cfg in providers.items()}
        store = open_store_for(config)
        router = Router(catalog, adapters, Accountant(store, config.budget))
        return cls(config=config, catalog=catalog, router=router, store=store)

    async def start(self) -> None:
        """Open the store, then add `discover = true` providers' own listings to the catalog."""
        await self.store.open()
        for name, provider in self.config.providers.items():
            if not provider.discover:
                continue
            try:
                models = await self.router.adapters[name].list_models()
            except GatewayError as error:
                log.warning("discovery on provider %s failed: %s", name, error.message)
                continue
            for model in models:
                self.catalog.add(
                    ModelCard(id=f"{name}/{model.id}", kind="chat", provider=name, upstream=model.id, discovered=True)
                )
            log.info("discovered %d models on provider %s", len(models), name)

    async def aclose(self) -> None:
        await self.router.aclose()
        await self.store.close()
