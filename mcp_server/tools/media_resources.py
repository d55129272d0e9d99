"""Resources: media://{id} (a saved file, as a blob with its own mime type), jobs://{job_id}, jobs://recent."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import ResourceTemplate

from mcp_server.access import identity
from mcp_server.errors import GatewayError
from mcp_server.gateway import Gateway
from mcp_server.media.files import MIME_TYPES
from mcp_server.sdk_internals import SdkChanged, add_template_copy, resource_templates
from mcp_server.video_jobs.records import public_view

log = logging.getLogger("genroute")
RECENT_JOBS = 20


def register(mcp: MCPServer[Any], gateway: Gateway) -> None:
    limit = gateway.config.media.resource_max_bytes

    _add_media_templates(mcp, gateway, limit)

    @mcp.resource(
        "jobs://recent",
        name="recent-jobs",
        description=f"The {RECENT_JOBS} latest video jobs, newest first (over HTTP, the key's own)",
        mime_type="application/json",
    )
    async def recent_jobs() -> str:
        jobs = await gateway.store.list_jobs(limit=RECENT_JOBS, caller=identity.current().jobs_scope)
        await gateway.jobs.look_after(jobs)  # an unfinished one whose process stopped is tracked again
        return json.dumps({"jobs": [public_view(job) for job in jobs]}, indent=2)

    @mcp.resource(
        "jobs://{job_id}",
        name="job",
        description="One video job: status, arguments, timestamps, result or error",
        mime_type="application/json",
    )
    async def job_resource(job_id: str) -> str:
        try:
            job = await gateway.jobs.get(job_id, caller=identity.current())
        except GatewayError as error:
            raise ResourceNotFoundError(error.message) from None
        await gateway.jobs.look_after([job])
        return json.dumps(public_view(job), indent=2)


def _add_media_templates(mcp: MCPServer[Any], gateway: Gateway, limit: int) -> None:
    """One template per file type, so every read carries the file's real mime type (a template has one).

    Their functions differ only in the extension they read, so the SDK derives the argument model, its JSON
    schema and the validating wrapper once (~1.5 ms each, on the path to the first `tools/list`), and the other
    templates are copies with their own URI, names, mime type and reader. That reaches into the SDK's resource
    manager (sdk_internals.py); without it, each template is registered the ordinary way.
    """
    first: ResourceTemplate | None = None
    for extension, mime_type in MIME_TYPES.items():
        kind = "image" if mime_type.startswith("image/") else "video"
        uri = f"media://{{media_id}}.{extension}"
        shown = {
            "name": f"media-{extension}",
            "title": f"Generated {kind} ({extension})",
            "description": f"A {kind} genroute generated and saved, in full (ids come from tool results)",
            "mime_type": mime_type,
        }
        reader = _media_reader(gateway, extension, limit)
        if first is not None:
            add_template_copy(mcp, first, uri, reader, **shown)
            continue
        mcp.resource(uri, **shown)(reader)
        try:
            first = resource_templates(mcp).get(uri)
        except SdkChanged as exc:
            log.warning("media templates registered one by one: %s", exc)


def _media_reader(gateway: Gateway, extension: str, limit: int) -> Callable[[str], Awaitable[bytes]]:
    async def read_media(media_id: str) -> bytes:
        try:
            _, data = await gateway.media.read(f"{media_id}.{extension}", limit)
        except GatewayError as error:
            if error.status == 404:
                raise ResourceNotFoundError(error.message) from None
            raise ResourceError(error.message) from None
        return data

    read_media.__name__ = f"media_{extension}"
    return read_media
