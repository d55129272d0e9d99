"""A video job's record and its parts, typed: what the store keeps, the job engine writes and the tools read.

`arguments`, `result` and `error` are stored as JSON in their own columns. Rows written before these models
existed hold the same keys as plain objects and read back unchanged; keys a model does not know are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_server.errors import ErrorBody
from mcp_server.media.registry import MediaItem
from mcp_server.store.usage import utcnow

JobStatus = Literal["submitting", "running", "completed", "failed"]
FINISHED: tuple[JobStatus, ...] = ("completed", "failed")
JobError = ErrorBody  # a failed job keeps the error envelope its caller is shown


class VideoArguments(BaseModel):
    """What generate_video was asked, as the job (re)submits it."""

    model_config = ConfigDict(extra="ignore")
    PRIVATE: ClassVar[frozenset[str]] = frozenset({"idempotency_key", "image_file"})  # never shown to clients

    prompt: str = ""
    duration: float | None = None
    aspect_ratio: str | None = None
    has_image: bool = False
    image_file: str | None = None  # the first frame, saved until the submission is answered (video_jobs/inputs.py)
    idempotency_key: str | None = None  # every (re)submission of the job sends this one

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(self.PRIVATE))


class VideoResult(BaseModel):
    """What a completed job keeps as its result."""

    model_config = ConfigDict(extra="ignore")

    video: MediaItem | None = None  # None only when every download attempt failed
    url: str | None = None  # the upstream's URL (may expire)
    duration: float | None = None
    cost_usd: float | None = None
    download_error: str | None = None


class JobRecord(BaseModel):
    """A paid, long-running upstream task (video). Written before the first poll, so a restart resumes it."""

    id: str
    kind: Literal["video"] = "video"
    provider: str
    model: str
    upstream_model: str
    task_id: str | None = None  # the provider's id; None while the submission is in flight
    status: JobStatus = "submitting"
    arguments: VideoArguments = Field(default_factory=VideoArguments)
    client_request_id: str | None = None
    caller: str = "stdio"  # the caller's identity (access/principals.py)
    progress: float | None = None
    result: VideoResult | None = None
    error: JobError | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def updated(self, fields: dict[str, Any]) -> JobRecord:
        """This record with `fields` changed (validated, so a store never writes a shape it cannot read back)."""
        return JobRecord.model_validate({**dict(self), **fields, "updated_at": datetime.now(UTC)})
