"""GET /media/{id}: a saved file over plain HTTP, for clients that cannot read a large resource blob.

With a key (the bearer layer in front checks it), or with a signed link's `exp` and `sig` (media/links.py) and no
key at all. A file removed by the retention sweep answers 410, so a link that worked once says why it stopped.
The file comes from the media store: sent from local disk when this replica has it, else streamed from the store
(single byte ranges too, for video players), or a 302 to a presigned URL with `[media] presigned_redirects`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from mcp_server.errors import Forbidden, GatewayError, NotFound
from mcp_server.media.files import mime_type_of
from mcp_server.media.links import MediaLinks
from mcp_server.media.registry import MediaRegistry, not_found
from mcp_server.media.retention import pruned

REDIRECT_TTL_S = 300  # a presigned URL handed out by a redirect is used at once


async def media_response(registry: MediaRegistry, request: Request, retention_days: float | None = None) -> Response:
    media_id = str(request.path_params.get("media_id", ""))
    try:
        response = await file_response(registry, media_id, request, private=True)
    except GatewayError as error:
        return _answer(error)
    if response is None:
        if pruned(media_id, retention_days):
            return gone(media_id, retention_days)
        return _answer(not_found(media_id))
    return response


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
    try:
        response = await file_response(registry, media_id, request, private=False)
    except GatewayError as error:
        return _answer(error)
    return gone(media_id, retention_days) if response is None else response


async def file_response(registry: MediaRegistry, media_id: str, request: Request, *, private: bool) -> Response | None:
    """The file as an HTTP answer, or None when there is no such file. GatewayError (503) when the store is down."""
    found = await registry.stat(media_id)
    if found is None:
        return None
    headers = {
        "Content-Disposition": f'inline; filename="{media_id}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": f"{'private' if private else 'public'}, max-age=86400, immutable",
        "Content-Security-Policy": "default-src 'none'; sandbox",  # a file, never a page that runs
    }
    mime = mime_type_of(media_id)
    if found.local is not None and not found.pending:  # a spooled file may go to the bucket while being sent
        return FileResponse(found.local, media_type=mime, headers=headers)
    redirect = await registry.redirect_url(media_id, REDIRECT_TTL_S)
    if redirect is not None:
        return RedirectResponse(redirect, status_code=302, headers={"Cache-Control": "no-store"})
    span = _byte_range(request.headers.get("range"), found.size)
    if span is None:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{found.size}"})
    start, end = span
    status = 206 if (start, end) != (0, found.size) and "range" in request.headers else 200
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
    headers.update({"Content-Length": str(end - start), "Accept-Ranges": "bytes"})
    return StreamingResponse(
        registry.chunks(media_id, start, end), status_code=status, media_type=mime, headers=headers
    )


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of one `bytes=a-b` range (the whole file without a header, or for one not understood, as
    RFC 9110 allows); None when it cannot be satisfied (416)."""
    whole = (0, size)
    if not header or not header.startswith("bytes=") or "," in header:
        return whole
    first, dash, last = header[6:].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return whole
    if last and not last.isdigit():
        return whole
    if not first:  # the last N bytes
        count = int(last)
        return (max(0, size - count), size) if count > 0 and size > 0 else None
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    return (start, end) if start < size and start < end else None


def gone(media_id: str, retention_days: float | None) -> JSONResponse:
    kept = f"files are kept {retention_days:g} days ([server] media_retention_days)" if retention_days else ""
    message = f"The media file '{media_id}' has been removed" + (f": {kept}." if kept else ".")
    return _answer(NotFound(message, code="media_pruned", status=410, param="media_id"))


def _answer(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status or 400)
