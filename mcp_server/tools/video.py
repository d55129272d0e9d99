"""generate_video and get_video_status: bounded waits with progress on every poll, then a job id to resume."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.catalog import ModelCard
from mcp_server.errors import invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.media.links import MediaLinks, SignedLink, resource_link, signed_link
from mcp_server.media.registry import MediaItem
from mcp_server.store import JobRecord, VideoResult
from mcp_server.store.job_record import JobError
from mcp_server.tools.image import check_prompt
from mcp_server.tools.inputs import load_input
from mcp_server.tools.results import absent_when_none, failed, guarded, ok, progress_token
from mcp_server.video_jobs.engine import OnUpdate
from mcp_server.video_jobs.records import elapsed_s

DEFAULT_WAIT_S = 45.0
_RATIO = re.compile(r"^\d{1,3}:\d{1,3}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class VideoJobOutput(BaseModel):
    job_id: str = Field(description="Pass to get_video_status; also readable as jobs://{job_id}")
    status: Literal["submitting", "running", "completed", "failed"]
    model: str
    provider: str
    elapsed_s: float = Field(description="Seconds since the job was submitted")
    progress: float | None = absent_when_none("0-100, where the provider reports it")
    hint: str | None = absent_when_none("What to do next while the job is still running")
    video: MediaItem | None = absent_when_none("The saved file (media:// uri, path), once done")
    url: str | None = absent_when_none("The provider's URL for the video (may expire)")
    duration: float | None = absent_when_none()
    cost_usd: float | None = absent_when_none()
    download_error: str | None = absent_when_none()
    link: SignedLink | None = absent_when_none("Over HTTP: a URL that opens the video without a key until it expires")
    deduplicated: bool = Field(default=False, description="True when client_request_id matched an existing job")


def check_video_arguments(card: ModelCard, duration: float | None, aspect_ratio: str | None) -> None:
    if duration is not None:
        if card.durations and duration not in card.durations:
            allowed = ", ".join(f"{d:g}" for d in card.durations)
            raise invalid_argument(
                "duration", f"Model '{card.id}' makes videos of {allowed} seconds; got {duration:g}."
            )
        if not 0 < duration <= 600:
            raise invalid_argument("duration", f"`duration` must be a number of seconds above 0; got {duration:g}.")
    if aspect_ratio is not None:
        if card.aspect_ratios and aspect_ratio not in card.aspect_ratios:
            allowed = ", ".join(card.aspect_ratios)
            raise invalid_argument(
                "aspect_ratio", f"Model '{card.id}' offers aspect ratios {allowed}; got '{aspect_ratio}'."
            )
        if not _RATIO.match(aspect_ratio):
            raise invalid_argument("aspect_ratio", f"`aspect_ratio` must look like 16:9; got '{aspect_ratio}'.")


def check_wait(wait_s: float, limit: float) -> float:
    if not 0 <= wait_s <= limit:
        raise invalid_argument("wait_s", f"`wait_s` must be from 0 to {limit:g} seconds; got {wait_s:g}.")
    return wait_s


def progress_reporter(ctx: Context) -> OnUpdate:
    """A progress notification per poll (status, provider progress, elapsed), strictly increasing, if asked for."""
    last = -1.0

    async def report(job: JobRecord) -> None:
        nonlocal last
        if progress_token(ctx) is None:
            return
        elapsed = elapsed_s(job)
        value = round(max(elapsed, last + 0.1), 1)  # elapsed is in tenths: keep sums of 0.1 from drifting
        last = value
        detail = f", provider at {job.progress:g}%" if job.progress is not None else ""
        await ctx.report_progress(value, None, f"video job {job.id}: {job.status}{detail}, {elapsed:.0f} s elapsed")

    return report


async def job_result(job: JobRecord, links: MediaLinks | None, *, deduplicated: bool = False) -> CallToolResult:
    if job.status == "failed":
        result = failed(job.error or JobError(message="The video job failed.", type="upstream_error"))
        result.structured_content = {**(result.structured_content or {}), "job_id": job.id}
        return result
    output = VideoJobOutput(
        job_id=job.id,
        status=job.status,
        model=job.model,
        provider=job.provider,
        elapsed_s=elapsed_s(job),
        progress=job.progress,
        deduplicated=deduplicated,
    )
    if job.status != "completed":
        output.hint = (
            f"The video is still being made ({output.elapsed_s:.0f} s so far). Call get_video_status with "
            f"job_id '{job.id}' to wait for it; the job keeps running on the server in the meantime."
        )
        return ok(output, text=f"Video job {job.id} is {job.status}. {output.hint}")
    done = job.result or VideoResult()
    output = output.model_copy(update=dict(done))  # the result's fields, as the job keeps them
    if done.video is None:
        return ok(output, text=f"Video job {job.id} is done, but {done.download_error} URL: {done.url}")
    output.link = await signed_link(links, done.video)
    link = resource_link(
        done.video,
        output.link,
        links,
        title="Generated video",
        description=f"The generated video, saved at {done.video.path}",
    )
    duration = f"{done.duration:g} s " if done.duration is not None else ""
    text = f"Video job {job.id} is done: {duration}video saved at {done.video.path} ({done.video.uri})."
    if output.link is not None:
        text += f" It opens without a key at {output.link.url}"
    return ok(output, [link], text=text)


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    config = gateway.config.media

    @mcp.tool(
        name="generate_video",
        description=(
            "Start a video from a text prompt (optionally a first-frame image) and wait up to `wait_s` seconds "
            "(default 45) with progress notifications. If it is not done by then the result is "
            "{job_id, status: 'running'}: call get_video_status with the job_id. Pass `client_request_id` to make a "
            "retry safe: the same id within 24 h returns the existing job instead of paying again."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True, idempotentHint=False),
    )
    @guarded
    async def generate_video(
        ctx: Context,
        prompt: Annotated[str, Field(description="What happens in the video")],
        model: Annotated[str | None, Field(description="Video model id or alias (see list_models)")] = None,
        image: Annotated[
            str | None,
            Field(
                description="First frame: base64, a data: URL, a public http(s) URL, a media:// id or an input_dir file"
            ),
        ] = None,
        duration: Annotated[float | None, Field(description="Seconds, one of the model's durations")] = None,
        aspect_ratio: Annotated[str | None, Field(description="e.g. 16:9, one of the model's aspect ratios")] = None,
        wait_s: Annotated[float, Field(description="How long to wait before returning the job id")] = DEFAULT_WAIT_S,
        client_request_id: Annotated[
            str | None, Field(description="Your id for this request; a repeat within 24 h returns the same job")
        ] = None,
    ) -> Annotated[CallToolResult, VideoJobOutput]:
        check_prompt(prompt)
        caller = identity.current()
        card = gateway.router.resolve(model, "video", caller)
        check_video_arguments(card, duration, aspect_ratio)
        check_wait(wait_s, config.video_max_wait_s)
        if client_request_id is not None and not _REQUEST_ID.match(client_request_id):
            raise invalid_argument(
                "client_request_id", "`client_request_id` must be 1-128 characters of letters, digits and . _ : -"
            )
        reference = await load_input(gateway, image, "image") if image is not None else None
        job, created = await gateway.jobs.create(
            card,
            prompt=prompt,
            image=reference,
            duration=duration,
            aspect_ratio=aspect_ratio,
            client_request_id=client_request_id,
            caller=caller,
        )
        job = await gateway.jobs.wait(job.id, wait_s, progress_reporter(ctx))
        return await job_result(job, gateway.links, deduplicated=not created)

    @mcp.tool(
        name="get_video_status",
        description=(
            "Wait up to `wait_s` seconds (default 45) for a video job from generate_video, with progress "
            "notifications, and return it: the saved video once done, the provider's error if it failed, or "
            "status 'running' (call again)."
        ),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=True, idempotentHint=True),
    )
    @guarded
    async def get_video_status(
        ctx: Context,
        job_id: Annotated[str, Field(description="The job_id generate_video returned")],
        wait_s: Annotated[float, Field(description="How long to wait for it to finish")] = DEFAULT_WAIT_S,
    ) -> Annotated[CallToolResult, VideoJobOutput]:
        check_wait(wait_s, config.video_max_wait_s)
        job = await gateway.jobs.wait(job_id.strip(), wait_s, progress_reporter(ctx), caller=identity.current())
        return await job_result(job, gateway.links)
