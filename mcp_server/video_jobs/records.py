"""What a video job's record means to clients: its public view and the errors that end it (the record's
shape is in store/job_record.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp_server.errors import SubmissionOutcomeUnknown
from mcp_server.providers.base import VideoStatus
from mcp_server.store import JobRecord
from mcp_server.store.job_record import JobError


def elapsed_s(job: JobRecord) -> float:
    end = job.updated_at if job.finished else datetime.now(UTC)
    return round(max((end - job.created_at).total_seconds(), 0.0), 1)


def public_view(job: JobRecord) -> dict[str, Any]:
    """A job as clients may read it (jobs:// resources): without its idempotency key or input file."""
    data = job.model_dump(mode="json")
    data["arguments"] = job.arguments.public()
    data["elapsed_s"] = elapsed_s(job)
    return data


def timeout_error(job: JobRecord, timeout_s: float) -> JobError:
    return JobError(
        message=(
            f"Provider '{job.provider}' did not finish the video within {timeout_s:g} s "
            "([media] video_job_timeout_s); genroute stopped tracking it."
        ),
        type="timeout",
        code="job_timeout",
    )


def generation_failed(job: JobRecord, status: VideoStatus) -> JobError:
    """The provider ran the job and reports that it failed."""
    detail = status.error_message or "no reason given"
    return JobError(
        message=f"Provider '{job.provider}' reports the video job failed: {detail}",
        type="upstream_error",
        code=status.error_code or "generation_failed",
    )


def outcome_unknown(provider: str) -> JobError:
    return SubmissionOutcomeUnknown(
        f"genroute stopped while submitting this video to provider '{provider}', so whether the provider started "
        "(and billed) it is unknown. It was not sent again: that could pay twice, as the provider is not known to "
        f"honour Idempotency-Key (set honours_idempotency_key = true under [providers.{provider}] if it does). "
        "Check the provider's dashboard before submitting again with a new client_request_id."
    ).body()
