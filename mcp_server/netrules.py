"""The operator's `[media] reference_allow_private` entries: parsed where the config is validated (config.py)
and matched where reference images are fetched (media/fetch.py), so the config does not import the fetcher."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AllowEntry:
    """One `reference_allow_private` entry: a hostname or a network, and optionally a port."""

    host: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return self.host == host.lower()


def parse_allow_entry(text: str) -> AllowEntry:
    """'assets.lan', 'assets.lan:8080', '10.0.0.5', '10.0.0.0/8', '[fd00::1]:8080' -> AllowEntry."""
    value = text.strip()
    host, port = value, None
    if value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        host, port = inner, rest.removeprefix(":") or None
    elif value.count(":") == 1:
        host, port = value.split(":")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"reference_allow_private entry {text!r}: the port must be a number from 1 to 65535")
    if not host:
        raise ValueError(f"reference_allow_private entry {text!r}: expected host, host:port, an IP or a CIDR")
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        network = None
    return AllowEntry(None if network else host.lower(), network, int(port) if port else None)
