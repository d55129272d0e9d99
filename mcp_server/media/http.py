"""GET /media/{id}: a saved file over plain HTTP, for clients that cannot read a large resource blob."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from mcp_server.media.registry import MediaRegistry, not_found


async def media_response(registry: MediaRegistry, request: Request) -> Response:
    media_id = str(request.path_params.get("media_id", ""))
    item = await anyio.to_thread.run_sync(registry.get, media_id)
    if item is None:
        return JSONResponse(not_found(media_id).to_dict(), status_code=404)
    return FileResponse(
        item.path,
        media_type=item.mime_type,
        headers={
            "Content-Disposition": f'inline; filename="{item.id}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400, immutable",
        },
    )
