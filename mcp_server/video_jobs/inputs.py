"""Reference images of video jobs kept on disk until the submission is acknowledged, so a restart can resend them."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import anyio.to_thread

from mcp_server.errors import ServerFault
from mcp_server.media.reference import ReferenceImage
from mcp_server.private_files import private_dir, write_private


class JobInputs:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def save(self, job_id: str, image: ReferenceImage) -> str:
        """Keep the reference image until the submission is acknowledged, so a restart can resend it."""
        path = self.root / f"{job_id}.input"

        def write() -> None:
            private_dir(self.root)
            write_private(path, image.data)

        await anyio.to_thread.run_sync(write)
        return path.name

    async def load(self, name: str) -> str:
        path = self.root / Path(name).name
        try:
            data = await anyio.Path(path).read_bytes()
        except OSError:
            raise ServerFault(
                "The job's reference image was lost before it could be submitted; submit the video again.",
                code="job_input_lost",
            ) from None
        return base64.b64encode(data).decode("ascii")

    async def drop(self, name: str) -> None:
        path = self.root / Path(name).name
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
