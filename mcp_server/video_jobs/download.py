"""A finished video job's file: fetched from the provider's URL into the output folder, a few tries, each bounded."""

from __future__ import annotations

import logging
from contextlib import aclosing

import anyio

from mcp_server.catalog import ModelCard
from mcp_server.config import MediaConfig
from mcp_server.errors import GatewayError
from mcp_server.media.registry import MediaRegistry
from mcp_server.providers.base import VideoStatus
from mcp_server.router import Router
from mcp_server.store import JobRecord, VideoResult

log = logging.getLogger("genroute.jobs")
DOWNLOAD_ATTEMPTS = 3


async def download_video(
    router: Router,
    registry: MediaRegistry,
    config: MediaConfig,
    job: JobRecord,
    card: ModelCard,
    status: VideoStatus,
) -> VideoResult:
    """The job's result with the saved file, or with `download_error` (and the provider's URL) when every try
    failed: the job is still completed, as it was paid for and the URL may work for a while."""
    duration = status.duration if status.duration is not None else job.arguments.duration
    per_second = card.pricing.usd_per_second
    result = VideoResult(
        url=status.video_url,
        duration=duration,
        cost_usd=round(per_second * duration, 6) if per_second is not None and duration is not None else None,
    )
    problem = "no download attempted"
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            adapter = router.adapter_for(card)  # a provider no longer configured is a failed try, reported
            with anyio.fail_after(config.download_timeout_s):
                async with aclosing(adapter.download_stream(status.video_url or "", config.max_video_bytes)) as chunks:  # type: ignore[type-var]
                    result.video = await registry.save_stream(chunks, job.model, "mp4")
            log.info("video job %s: saved %s", job.id, result.video.path)
            return result
        except GatewayError as error:
            problem = error.message
        except TimeoutError:
            problem = f"the download took longer than {config.download_timeout_s:g} s"
        log.warning("video job %s: download attempt %d failed: %s", job.id, attempt + 1, problem)
        await anyio.sleep(2.0**attempt)
    result.download_error = f"The video could not be downloaded ({problem}); the upstream URL may still work."
    return result
