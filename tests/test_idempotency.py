"""Paid generation never runs twice by accident: the router's side of it.

Every retry re-runs the same operation, so an Idempotency-Key made once per logical call is the same on
every attempt; a submission marked `resend_if_lost=False` (video) whose answer was lost is not sent again,
neither to the same provider nor to a fallback, unless its provider declares `honours_idempotency_key`.

Until the media tools land on main, the operation below stands in for the media adapter: it posts to the
emulator's real /v1/images/generations and /v1/video/generations routes over the provider's pooled
client, with the adapters' own error decoding, exactly as the adapter will. (Once Router.generate_image
and Router.submit_video exist, tests/test_media*.py cover the same through the tools.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest

from mcp_server.config import parse_config
from mcp_server.errors import GatewayError
from mcp_server.gateway import Gateway
from mcp_server.providers.http import error_from_response, transport_error
from mcp_server.router import Route, Router
from tests.emulator import Emulator
from tests.faults_support import backup, backup_emulator_server
from tests.support import EMU_KEY_ENV

__all__ = ["backup", "backup_emulator_server"]  # fixtures
pytestmark = pytest.mark.anyio


def media_config(config: dict[str, Any], backup: Emulator) -> dict[str, Any]:
    config["providers"]["backup"] = {
        "protocol": "openai",
        "base_url": backup.openai_url,
        "api_key_env": EMU_KEY_ENV,
        "timeout_s": 10,
    }
    config["models"] = {
        "kling": {"provider": "arkroute", "upstream": "kling-v2-master", "kind": "video", "fallbacks": ["kling-b"]},
        "kling-b": {"provider": "backup", "upstream": "kling-v2-master", "kind": "video"},
        "banana": {"provider": "arkroute", "upstream": "nano-banana-2", "kind": "image"},
    }
    config["presets"] = {}
    return config


@pytest.fixture
async def router(config_data: dict[str, Any], backup: Emulator) -> AsyncIterator[Router]:
    gateway = Gateway.from_config(parse_config(media_config(config_data, backup)))
    try:
        yield gateway.router
    finally:
        await gateway.router.aclose()


def submission(path: str, body: dict[str, Any], key: str) -> Callable[[Route], Awaitable[dict[str, Any]]]:
    """One logical paid call: the key is made once, outside the operation, so every attempt sends it."""

    async def operation(route: Route) -> dict[str, Any]:
        adapter: Any = route.adapter
        try:
            response = await adapter.client.post(
                path, json={**body, "model": route.card.upstream}, headers={"Idempotency-Key": key}
            )
        except httpx2.TransportError as exc:
            raise transport_error(adapter.name, exc, "the emulator") from None
        if response.status_code >= 400:
            raise error_from_response(adapter.name, response, adapter.redact)
        return response.json()

    return operation


def video(key: str) -> Callable[[Route], Awaitable[dict[str, Any]]]:
    return submission("/video/generations", {"prompt": "a cat on a skateboard", "duration": 5}, key)


async def test_image_retries_reuse_the_same_idempotency_key(router: Router, emulator: Emulator) -> None:
    key = str(uuid.uuid4())
    emulator.fail_next("images", status=503)
    emulator.fail_next("images", drop_connection=True)  # the answer lost: an image call is sent again
    card = router.catalog.resolve("banana", "image")
    routed = await router.run(card, submission("/images/generations", {"prompt": "a cat", "n": 1}, key))
    assert routed.value["data"] and routed.attempts == 3
    assert emulator.idempotency_keys == [key, key, key]


async def test_a_lost_video_submission_is_not_sent_again(router: Router, emulator: Emulator, backup: Emulator) -> None:
    emulator.fail_next("video_submit", drop_connection=True)
    with pytest.raises(GatewayError) as caught:
        await router.run(router.catalog.resolve("kling", "video"), video("k-1"), resend_if_lost=False)
    error = caught.value
    assert error.code == "submission_outcome_unknown"
    assert "may exist upstream" in error.message and "did not submit it again" in error.message
    assert len(emulator.calls("video_submit")) == 1
    assert backup.calls("video_submit") == []  # a fallback would be a second paid job


async def test_a_video_submission_that_timed_out_is_not_sent_again(
    config_data: dict[str, Any], backup: Emulator, emulator: Emulator
) -> None:
    config = media_config(config_data, backup)
    config["providers"]["arkroute"]["timeout_s"] = 0.3
    gateway = Gateway.from_config(parse_config(config))
    emulator.fail_next("video_submit", status=200, latency_ms=2000)  # accepted, but the answer comes too late
    try:
        with pytest.raises(GatewayError) as caught:
            await gateway.router.run(gateway.catalog.resolve("kling", "video"), video("k-2"), resend_if_lost=False)
    finally:
        await gateway.router.aclose()
    assert caught.value.code == "submission_outcome_unknown" and "upstream_timeout" in caught.value.message
    assert len(emulator.calls("video_submit")) == 1 and backup.calls("video_submit") == []


async def test_a_refused_video_submission_is_retried_with_the_same_key(router: Router, emulator: Emulator) -> None:
    """429 and 503 mean the job was not accepted: sending it again cannot pay twice."""
    emulator.fail_next("video_submit", status=429)
    emulator.fail_next("video_submit", status=503)
    routed = await router.run(router.catalog.resolve("kling", "video"), video("k-3"), resend_if_lost=False)
    assert routed.value["status"] == "processing" and routed.card.id == "kling"
    assert emulator.video_idempotency_keys == ["k-3", "k-3", "k-3"] and emulator.video_submissions == 1


async def test_a_video_never_sent_may_go_to_the_fallback(
    config_data: dict[str, Any], backup: Emulator, emulator: Emulator
) -> None:
    """A refused connection means nothing reached the provider: the fallback may take the job."""
    config = media_config(config_data, backup)
    config["providers"]["arkroute"]["base_url"] = "http://127.0.0.1:9/v1"
    gateway = Gateway.from_config(parse_config(config))
    try:
        routed = await gateway.router.run(gateway.catalog.resolve("kling", "video"), video("k-4"), resend_if_lost=False)
    finally:
        await gateway.router.aclose()
    assert routed.card.id == "kling-b" and routed.fallback_from == "kling"
    assert backup.video_idempotency_keys == ["k-4"]


async def test_a_provider_honouring_keys_gets_the_lost_submission_again_with_the_same_key(
    config_data: dict[str, Any], backup: Emulator, emulator: Emulator
) -> None:
    config = media_config(config_data, backup)
    config["providers"]["arkroute"]["honours_idempotency_key"] = True
    gateway = Gateway.from_config(parse_config(config))
    emulator.fail_next("video_submit", drop_connection=True)
    try:
        routed = await gateway.router.run(gateway.catalog.resolve("kling", "video"), video("k-5"), resend_if_lost=False)
    finally:
        await gateway.router.aclose()
    assert routed.card.id == "kling" and routed.attempts == 2
    assert emulator.video_idempotency_keys == ["k-5", "k-5"] and backup.calls("video_submit") == []
