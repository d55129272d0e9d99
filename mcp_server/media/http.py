"""GET /media/{id}: a saved file over plain HTTP, for clients that cannot read a large resource blob.

With a key (the bearer layer in front checks it), or with a signed link's `exp` and `sig` (media/links.py) and no
key at all. A file removed by the retention sweep answers 410, so a link that worked once says why it stopped.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from mcp_server.errors import Forbidden, GatewayError, NotFound
from mcp_server.media.links import MediaLinks
from mcp_server.media.registry import MediaItem, MediaRegistry, not_found
from mcp_server.media.retention import pruned


async def media_response(registry: MediaRegistry, request: Request, retention_days: float | None = None) -> Response:
    media_id = str(request.path_params.get("media_id", ""))
    item = await anyio.to_thread.run_sync(registry.get, media_id)
    if item is None:
        if pruned(media_id, retention_days):
            return gone(media_id, retention_days)
        return _answer(not_found(media_id))
    return file_response(item, private=True)


async def signed_media_response(
    registry: MediaRegistry, links: MediaLinks, request: Request, retention_days: float | None
) -> Response:
    """403 for a link genroute did not sign (tampered, or another server's) or one past its time; 410 for a
    genuine link whose file is gone (only saved files are ever signed)."""
    media_id = str(request.path_params.get("media_id", ""))
    verdict = await links.verify(media_id, request.query_params.get("exp", ""), request.query_params.get("sig", ""))
    if verdict != "ok":
        why = "has expired" if verdict == "expired" else "is not valid (altered, or signed by another server)"
        message = f"This media link {why}. Ask for the file again (get_video_status, or a new call) for a fresh link."
        code = "media_link_expired" if verdict == "expired" else "media_link_invalid"
        return _answer(Forbidden(message, code=code, param="sig"))
    item = await anyio.to_thread.run_sync(registry.get, media_id)
    if item is None:
        return gone(media_id, retention_days)
    return file_response(item, private=False)


def file_response(item: MediaItem, *, private: bool) -> FileResponse:
    return FileResponse(
        item.path,
        media_type=item.mime_type,
        headers={
            "Content-Disposition": f'inline; filename="{item.id}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": f"{'private' if private else 'public'}, max-age=86400, immutable",
            "Content-Security-Policy": "default-src 'none'; sandbox",  # a file, never a page that runs
        },
    )


def gone(media_id: str, retention_days: float | None) -> JSONResponse:
    kept = f"files are kept {retention_days:g} days ([server] media_retention_days)" if retention_days else ""
    message = f"The media file '{media_id}' has been removed" + (f": {kept}." if kept else ".")
    return _answer(NotFound(message, code="media_pruned", status=410, param="media_id"))


def _answer(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status or 400)
