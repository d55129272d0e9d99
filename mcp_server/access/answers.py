"""The access layers' own answers (421, 403, 429, ...): a small JSON body sent straight over ASGI, before any
route or the SDK runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send


async def send_json(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((name.encode(), value.encode()) for name, value in (headers or {}).items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def jsonrpc_error(request_id: Any, message: str, data: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC error the SDK's clients show as it is (they read the body of a non-2xx answer), with
    genroute's own error code and details in `data`. -32000 is JSON-RPC's first implementation-defined code."""
    usable_id = request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None
    return {"jsonrpc": "2.0", "id": usable_id, "error": {"code": -32000, "message": message, "data": data}}
