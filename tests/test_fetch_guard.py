"""The reference-image URL guard, through generate_image: public addresses only, on every hop, size- and time-capped.

The "public web site" is `LoopbackSite`, a second real server on 127.0.0.1 that the config allows the
way an operator would allow an internal asset host (`[media] reference_allow_private`), by its port.
The emulator on 127.0.0.1 stays private, so a redirect from the site to the emulator is a redirect
from an allowed address to a private one, and must be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mcp_server.config import parse_config
from mcp_server.errors import ConfigError
from tests.emulator import Emulator
from tests.support import in_memory_client
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
