"""`genroute check`: the config, then one line per provider saying what was really checked, and each running
server's view of the provider's health.

"ok" means the key was verified (accepted where a wrong one is refused) or none is needed; "reachable, key not
checked" means the provider answered but offers no free way to tell a good key from a bad one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from mcp_server.config import GatewayConfig, ProviderConfig
from mcp_server.errors import GatewayError

if TYPE_CHECKING:
    from mcp_server.gateway import Gateway
    from mcp_server.providers.base import ProviderAdapter

PROBE_TIMEOUT_S = 30


async def check_command(config: GatewayConfig) -> int:
    """Exit status 1 when a provider is unreachable, refuses its key or has none; 0 otherwise."""
    from mcp_server.gateway import Gateway

    print(f"config: ok ({config.source})")
    gateway = Gateway.from_config(config)
    health = _health_lines(gateway)
    failures = 0
    try:
        for name, adapter in gateway.adapters.items():
            line, ok = await probe(name, adapter, config.providers.get(name))
            print(line)
            failures += not ok
            for health_line in health.get(name, []):
                print(health_line)
    finally:
        await gateway.aclose()
    if not health:
        print(f"health: no running genroute server has recorded provider calls ({gateway.health_dir})")
    return 1 if failures else 0


async def probe(name: str, adapter: ProviderAdapter, provider: ProviderConfig | None) -> tuple[str, bool]:
    """One provider's line and whether it passed, from the cheapest calls that tell (nothing is generated)."""
    if provider and provider.key_envs() and provider.api_key() is None:
        return f"{name}: missing key: environment variable {' or '.join(provider.key_envs())} is not set", False
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            checked = await adapter.check_key()
    except TimeoutError:
        return f"{name}: unreachable: no answer within {PROBE_TIMEOUT_S} s", False
    except GatewayError as error:
        verdict = "bad key" if error.status in (401, 403) else "unreachable" if error.status in (502, 504) else "error"
        return f"{name}: {verdict}: {error.message}", False
    if checked.key == "verified":
        return f"{name}: ok, key verified ({checked.detail})", True
    if checked.key == "unchecked":
        return f"{name}: reachable, key not checked ({checked.detail}); the first call will tell", True
    if provider is not None and provider.protocol != "local":  # a provider that may well need a key
        return f"{name}: reachable, no key configured (no api_key_env; {checked.detail})", True
    return f"{name}: ok, no key needed ({checked.detail})", True


def _health_lines(gateway: Gateway) -> dict[str, list[str]]:
    """Each provider's health as the running servers see it (their reports in data_dir), one line each."""
    from mcp_server.reliability.health_file import read_reports

    lines: dict[str, list[str]] = {}
    now = datetime.now(UTC)
    for report in read_reports(gateway.health_dir):
        age = max((now - report.written_at).total_seconds(), 0.0)
        for item in report.providers:
            text = f"  health: {item.aged(age, now).summary()} [server pid {report.pid}, as of {age:.0f} s ago]"
            lines.setdefault(item.provider, []).append(text)
    return lines
