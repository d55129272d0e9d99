"""What a video job's record means to clients: its public view, its result, and the errors that end it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from mcp_server.errors import SubmissionOutcomeUnknown
from mcp_server.media.registry import MediaItem
from mcp_server.store import JobRecord

_PRIVATE_ARGUMENTS = ("idempotency_key", "image_file")


class VideoResult(BaseModel):
    """What a completed job stores as its result."""

    video: MediaItem | None = None  # None only when every download attempt failed
    url: str | None = None  # the upstream's URL (may expire)
    duration: float | None = None
    cost_usd: float | None = None
    download_error: str | None = None


def elapsed_s(job: JobRecord) -> float:
    end = job.updated_at if job.finished else datetime.now(UTC)
    return round(max((end - job.created_at).total_seconds(), 0.0), 1)


def public_view(job: JobRecord) -> dict[str, Any]:
    """A job as clients may read it (jobs:// resources): without its idempotency key or input file."""
    data = job.model_dump(mode="json")
    data["arguments"] = {k: v for k, v in job.arguments.items() if k not in _PRIVATE_ARGUMENTS}
    data["elapsed_s"] = elapsed_s(job)
    return data


def timeout_error(job: JobRecord, timeout_s: float) -> dict[str, Any]:
    return {
        "message": (
            f"Provider '{job.provider}' did not finish the video within {timeout_s:g} s "
            "([media] video_job_timeout_s); genroute stopped tracking it."
        ),
        "type": "timeout",
        "code": "job_timeout",
        "param": None,
        "status": None,
    }


def outcome_unknown(provider: str) -> dict[str, Any]:
    return (
        SubmissionOutcomeUnknown(
            f"genroute stopped while submitting this video to provider '{provider}', so whether the provider started "
            "(and billed) it is unknown. It was not sent again: that could pay twice, as the provider is not known to "
            f"honour Idempotency-Key (set honours_idempotency_key = true under [providers.{provider}] if it does). "
            "Check the provider's dashboard before submitting again with a new client_request_id."
        )
        .body()
        .model_dump()
    )
