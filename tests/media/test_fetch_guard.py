"""The reference-image URL guard, through generate_image: public addresses only, on every hop, size- and time-capped.

The "public web site" is `LoopbackSite`, a second real server on 127.0.0.1 that the config allows the
way an operator would allow an internal asset host (`[media] reference_allow_private`), by its port.
The emulator on 127.0.0.1 stays private, so a redirect from the site to the emulator is a redirect
from an allowed address to a private one, and must be refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from mcp_server.config import parse_config
from mcp_server.errors import ConfigError, GatewayError
from mcp_server.media.fetch import GuardedFetcher, is_public
from tests.support import in_memory_client, stdio_client, write_config
from tests.support_media import IMAGE_MODEL, LoopbackSite, media_config, png_b64

pytestmark = pytest.mark.anyio


@pytest.fixture
def site() -> Iterator[LoopbackSite]:
    with LoopbackSite(big_bytes=64_000) as running:
        yield running


@pytest.fixture
def config(config_data: dict[str, Any], site: LoopbackSite) -> dict[str, Any]:
    return media_config(
        config_data,
        reference_allow_private=[f"127.0.0.1:{site.port}"],
        reference_max_bytes=50_000,
        reference_fetch_timeout_s=1.5,
    )


async def generate(config: dict[str, Any], reference: str) -> Any:
    async with in_memory_client(config) as client:
        return await client.call_tool(
            "generate_image", {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256", "reference_image": reference}
        )


def refusal(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    error = result.structured_content["error"]
    assert error["param"] == "reference_image"
    return error


async def test_allowed_site_image_is_fetched_and_sent(
    config: dict[str, Any], emulator: Emulator, site: LoopbackSite
) -> None:
    result = await generate(config, f"{site.url}/image.png")
    assert not result.is_error, result.content
    assert emulator.calls("images")[-1].json["image"] == png_b64(32, 32)
    assert site.paths == ["/image.png"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{emulator}/files/x.png", "loopback"),
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
        ("http://localhost:{emulator}/files/x.png", "loopback"),
        ("http://[::ffff:127.0.0.1]:{emulator}/files/x.png", "loopback"),
        ("http://10.0.0.1/x.png", "private"),
        ("https://[::1]/x.png", "loopback"),
    ],
)
async def test_private_addresses_are_refused(config: dict[str, Any], emulator: Emulator, url: str, kind: str) -> None:
    result = await generate(config, url.format(emulator=emulator.port))
    error = refusal(result)
    assert error["code"] == "url_not_allowed" and kind in error["message"]
    assert emulator.requests == []  # neither the target nor the image API was reached


async def test_redirect_from_allowed_site_to_private_address_is_refused(
    config: dict[str, Any], emulator: Emulator, site: LoopbackSite
) -> None:
    target = f"http://127.0.0.1:{emulator.port}/files/secret.png"
    result = await generate(config, f"{site.url}/redirect?to={target}")
    error = refusal(result)
    assert error["code"] == "url_not_allowed" and "loopback" in error["message"]
    assert site.paths == [f"/redirect?to={target}"]  # the first hop was made...
    assert emulator.requests == []  # ...the private one never


async def test_redirect_to_metadata_address_is_refused(
    config: dict[str, Any], emulator: Emulator, site: LoopbackSite
) -> None:
    result = await generate(config, f"{site.url}/redirect?to=http://169.254.169.254/latest/")
    assert refusal(result)["code"] == "url_not_allowed"
    assert emulator.requests == []


async def test_redirects_within_the_allowed_site_are_followed_but_bounded(
    config: dict[str, Any], emulator: Emulator, site: LoopbackSite
) -> None:
    followed = await generate(config, f"{site.url}/redirect?to=/image.png")
    assert not followed.is_error, followed.content
    looping = await generate(config, f"{site.url}/loop")
    assert "redirected more than 5 times" in refusal(looping)["message"]
    assert len(emulator.calls("images")) == 1


async def test_size_cap_and_timeout_and_errors(config: dict[str, Any], emulator: Emulator, site: LoopbackSite) -> None:
    too_big = refusal(await generate(config, f"{site.url}/big"))
    assert "larger than 50000 bytes" in too_big["message"]
    slow = refusal(await generate(config, f"{site.url}/slow"))
    assert "longer than 1.5 s" in slow["message"]
    missing = refusal(await generate(config, f"{site.url}/nothing-here"))
    assert "HTTP 404" in missing["message"]
    credentials = refusal(await generate(config, f"http://user:pw@127.0.0.1:{site.port}/image.png"))
    assert "user name or password" in credentials["message"]
    assert emulator.calls("images") == []


async def test_allow_entry_is_port_specific(config: dict[str, Any], emulator: Emulator, site: LoopbackSite) -> None:
    """The allowance names the site's port; the same address on the emulator's port stays private."""
    result = await generate(config, f"http://127.0.0.1:{emulator.port}/files/x.png")
    assert refusal(result)["code"] == "url_not_allowed"


def test_bad_allow_entries_are_config_errors(config_data: dict[str, Any]) -> None:
    config_data["media"] = {"reference_allow_private": ["10.0.0.1:99999"]}
    with pytest.raises(ConfigError) as caught:
        parse_config(config_data)
    assert caught.value.key == "media.reference_allow_private" and "port" in caught.value.problem


# IPv6 forms that carry an IPv4 address, each judged by that address. Teredo keeps its client's address in the
# last 32 bits, inverted: 80ff:fffe is 127.0.0.1, 5601:5601 is 169.254.169.254, f7f7:f7f7 is 8.8.8.8.
EMBEDDED_PRIVATE = [
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    "::ffff:a00:1",  # IPv4-mapped 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 (well-known prefix) to the metadata address
    "64:ff9b::7f00:1",
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64: refused whatever it embeds
    "64:ff9b:1:808:8:800::",  # ... even 8.8.8.8 at the /48 offset
    "2002:a9fe:a9fe::1",  # 6to4
    "2002:a00:1::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
    "fec0::1",  # site-local
    "fed0::1",
]
EMBEDDED_PUBLIC = ["64:ff9b::808:808", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "::808:808"]


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_ipv6_forms_of_private_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [*EMBEDDED_PUBLIC, "2606:4700:4700::1111", "8.8.8.8"])
def test_ipv6_forms_of_public_addresses_stay_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "fec0::1"])
async def test_a_host_name_resolving_to_an_embedded_private_address_is_refused_before_connecting(
    address: str,
) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:  # the guard's DNS: a name that points inside
        asked.append(host)
        return ["93.184.215.14", address]  # one public answer does not make the other one safe

    fetcher = GuardedFetcher(max_bytes=1000, timeout_s=2.0, resolver=resolver)
    try:
        with pytest.raises(GatewayError) as caught:
            await fetcher.fetch("http://assets.example.com/x.png")
    finally:
        await fetcher.aclose()
    assert caught.value.code == "url_not_allowed" and caught.value.param == "reference_image"
    assert address in caught.value.message and asked == ["assets.example.com"]


async def test_embedded_private_addresses_are_refused_by_a_real_server(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Over stdio to `genroute serve`: each URL is refused as not allowed, and nothing is fetched or generated."""
    port = emulator.port
    urls = {
        f"http://[::7f00:1]:{port}/files/x.png": "embeds 127.0.0.1, a loopback address",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/": "embeds 169.254.169.254, a link-local address",
        "http://[64:ff9b:1::a9fe:a9fe]/latest/meta-data/": "local-use NAT64",
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/": "embeds 169.254.169.254",
        f"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/files/x.png": "embeds 127.0.0.1",
        "http://[fec0::1]/x.png": "site-local",
    }
    config_path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    async with stdio_client(config_path) as client:
        for url, reason in urls.items():
            result = await client.call_tool(
                "generate_image", {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256", "reference_image": url}
            )
            error = refusal(result)
            assert error["code"] == "url_not_allowed" and reason in error["message"], (url, error)
    assert emulator.requests == []
