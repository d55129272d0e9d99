"""Fetching a reference image from a URL a client gave: public addresses only (SSRF guard).

Every hop (the first URL and each redirect) is resolved, every address it resolves to must be public
(or on the operator's `[media] reference_allow_private` list), and the connection goes to the address
that was checked (the Host header and TLS name stay the URL's), so DNS cannot answer differently
between the check and the connect. Redirects are followed by hand, at most five; the body is capped
in bytes and the whole fetch in time.

The one injection point is the constructor's `resolver` (hostname -> addresses); the gateway passes
the system resolver. Which addresses count as allowed comes only from the config.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin

import anyio
import httpx2

from mcp_server.errors import GatewayError, invalid_argument
from mcp_server.netrules import IPAddress, parse_allow_entry

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


# IPv6 forms that carry an IPv4 address (the IPv4-mapped one is unwrapped and connected to over IPv4):
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d; some stacks still route it to IPv4
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
# RFC 8215 local-use NAT64: it may translate to private IPv4, at an offset that depends on the operator's prefix
# length, so what it embeds cannot be read off the address: refused whatever it carries.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _unmapped(address: IPAddress) -> IPAddress:
    """::ffff:127.0.0.1 is 127.0.0.1: judge (and connect to) the IPv4 address inside."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96), 6to4
    (2002::/16) or Teredo (2001::/32, the client: the last 32 bits inverted). None for anything else."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # :: and ::1 are IPv6's own
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local (cloud metadata), CGNAT, reserved, site-local or
    multicast; an IPv6 address that embeds an IPv4 address is judged by that IPv4 address."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_public(embedded)
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _LOCAL_NAT64 or address.is_site_local or address.is_reserved
    ):
        return False
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedFetcher:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        allow_private: list[str] | None = None,
        resolver: Resolver | None = None,
        param: str = "reference_image",
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.allow = [parse_allow_entry(entry) for entry in allow_private or []]
        self.resolver = resolver or system_resolver
        self.param = param
        self._client: httpx2.AsyncClient | None = None

    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: the connection must go where it was checked
                headers={"User-Agent": "genroute-reference-fetch", "Accept": "image/*"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, url: str, *, param: str | None = None) -> bytes:
        """The body at `url`; GatewayError naming `param` for any refused address, status, size or timeout."""
        name = param or self.param
        try:
            with anyio.fail_after(self.timeout_s):
                for _ in range(MAX_REDIRECTS + 1):
                    target = self._check_url(url, name)
                    address = await self._checked_address(target, name)
                    location = await self._get(target, address, name)
                    if isinstance(location, bytes):
                        return location
                    url = urljoin(str(target), location)
        except TimeoutError:
            raise invalid_argument(
                name, f"Fetching {name} took longer than {self.timeout_s:g} s. Pass the image as base64 instead."
            ) from None
        raise invalid_argument(name, f"The {name} URL redirected more than {MAX_REDIRECTS} times.")

    def _check_url(self, url: str, name: str) -> httpx2.URL:
        try:
            target = httpx2.URL(url)
        except (httpx2.InvalidURL, ValueError):
            raise invalid_argument(name, f"{name} is not a valid URL.") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise invalid_argument(name, f"{name} URLs must be http(s)://host/...; got scheme '{target.scheme}'.")
        if target.userinfo:
            raise invalid_argument(name, f"{name} URLs may not carry a user name or password.")
        return target

    async def _checked_address(self, target: httpx2.URL, name: str) -> IPAddress:
        host = target.host
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                with anyio.fail_after(min(self.timeout_s, 10.0)):
                    resolved = await self.resolver(host, port)
            except (OSError, TimeoutError):
                raise invalid_argument(name, f"The host '{host}' in {name} could not be resolved.") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
        addresses = [_unmapped(address) for address in addresses]
        if not addresses:
            raise invalid_argument(name, f"The host '{host}' in {name} could not be resolved.")
        for address in addresses:
            if not (is_public(address) or any(entry.matches(host, address, port) for entry in self.allow)):
                raise invalid_argument(
                    name,
                    f"{name} URL refused: '{host}' resolves to {address}, {_describe(address)}. Only public "
                    "addresses may be fetched (an operator can allow a host with [media] reference_allow_private).",
                    code="url_not_allowed",
                )
        return addresses[0]

    async def _get(self, target: httpx2.URL, address: IPAddress, name: str) -> bytes | str:
        """One hop to the checked address: the body, or the Location of a redirect."""
        pinned = target.copy_with(host=str(address))  # httpx brackets IPv6 itself
        host_header = target.host if target.port is None else f"{target.host}:{target.port}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self.client().build_request("GET", pinned, headers={"Host": host_header}, extensions=extensions)
        try:
            response = await self.client().send(request, stream=True)
        except httpx2.TransportError as exc:
            raise invalid_argument(name, f"Could not fetch {name} from {target.host}: {type(exc).__name__}.") from None
        try:
            if response.status_code in _REDIRECTS and response.headers.get("location"):
                return response.headers["location"]
            if response.status_code >= 400:
                raise invalid_argument(
                    name, f"Fetching {name} from {target.host} answered HTTP {response.status_code}."
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large(name)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise self._too_large(name)
            return bytes(body)
        except httpx2.TransportError as exc:
            raise invalid_argument(name, f"Could not fetch {name} from {target.host}: {type(exc).__name__}.") from None
        finally:
            await response.aclose()

    def _too_large(self, name: str) -> GatewayError:
        return invalid_argument(
            name, f"The {name} at that URL is larger than {self.max_bytes} bytes ([media] reference_max_bytes)."
        )


def _describe(address: IPAddress) -> str:
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return f"which embeds {embedded}, {_describe(embedded)}"
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
        return "a local-use NAT64 address (64:ff9b:1::/48), which may lead to private IPv4 addresses"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address (fec0::/10)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_private:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    return "not a public address"
