"""For the access tests: any ASGI app served on a loopback socket from a thread, and an OAuth authorization
server's RFC 7662 introspection endpoint (the only part of an AS a resource server talks to)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


class ThreadedServer:
    """uvicorn in a daemon thread on a free loopback port; `with ThreadedServer(app) as s: s.url`."""

    def __init__(self, app: ASGIApp, *, port: int = 0, lifespan: str = "off") -> None:
        self.app = app
        self.lifespan = lifespan
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan=self.lifespan)
        server = self._server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"asgi-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start within 15 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


@dataclass
class AuthorizationServer:
    """Introspection answers by token; `requests` records what the resource server sent (form fields, auth)."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def app(self) -> Starlette:
        async def introspect(request: Request) -> Response:
            form = await request.form()
            self.requests.append({"form": dict(form), "authorization": request.headers.get("authorization")})
            if self.status != 200:
                return Response("unavailable", status_code=self.status)
            answer = self.tokens.get(str(form.get("token")), {"active": False})
            return JSONResponse(answer)

        return Starlette(routes=[Route("/introspect", introspect, methods=["POST"])])
