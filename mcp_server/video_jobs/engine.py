"""Video jobs: recorded before they are paid for, tracked in the background, downloaded, resumed after a restart.

One tracker task per unfinished job runs in the gateway's task group (not in a tool call), so a
client that cancels or times out stops only its own waiting: the job goes on being polled and its
video downloaded. Tool calls wait on the tracker with a bound (`wait_s`) and hear about every poll.

Several processes may serve one database (replicas on PostgreSQL, or processes sharing a data_dir): exactly one
of them tracks a job, the one holding its lease in the store (`video_job_lease_s`, renewed every third of it).
Another process asked about the job follows it through the store instead of submitting or downloading it again.
A job whose lease ran out (its process stopped) is taken over: at start, by a sweep every third of the lease, or
by the next call that asks for it; so is, at once, a job whose lease holder is provably gone (a process on this
host that was killed: see owner.py). One caught mid-submission is sent again (with the same Idempotency-Key) only
to a provider known to honour that key, else it fails with an explanation.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from mcp_server.access.policy import policy_of
from mcp_server.access.principals import Caller
from mcp_server.catalog import Catalog, ModelCard
from mcp_server.config import MediaConfig
from mcp_server.errors import GatewayError, ServerFault, SubmissionOutcomeUnknown, invalid_argument
from mcp_server.media.owners import remember
from mcp_server.media.reference import ReferenceImage
from mcp_server.media.registry import MediaRegistry
from mcp_server.providers.base import VideoStatus
from mcp_server.router import Router, new_idempotency_key
from mcp_server.store import JobRecord, Store, VideoArguments
from mcp_server.store.job_record import JobError
from mcp_server.video_jobs.download import download_video
from mcp_server.video_jobs.inputs import JobInputs
from mcp_server.video_jobs.owner import is_gone, process_holder_id
from mcp_server.video_jobs.records import generation_failed, outcome_unknown, timeout_error

log = logging.getLogger("genroute.jobs")
JOB_ID = re.compile(r"^vid-[0-9a-f]{20}$")
MAX_RETRY_AFTER_S = 120.0  # an upstream's Retry-After is honoured up to this
PERMANENT_POLL_FAILURES = 3  # consecutive non-retryable poll errors before a job is marked failed
SUBMIT_GRACE_S = 150.0  # how far past wait_s a call waits for its submission to be answered
FOLLOW_EVERY_S = 1.0  # how often a process that does not track a job re-reads it from the store

OnUpdate = Callable[[JobRecord], Awaitable[None]]


class _Tracker:
    """The latest state of one job and an event that fires on every poll."""

    def __init__(self, job: JobRecord) -> None:
        self.job = job
        self._changed = anyio.Event()

    def next_change(self) -> anyio.Event:
        return self._changed

    def publish(self, job: JobRecord) -> None:
        self.job = job
        changed, self._changed = self._changed, anyio.Event()
        changed.set()


class VideoJobs:
    def __init__(
        self,
        *,
        store: Store,
        router: Router,
        catalog: Catalog,
        registry: MediaRegistry,
        config: MediaConfig,
        inputs_dir: Path,
    ) -> None:
        self.store = store
        self.router = router
        self.catalog = catalog
        self.registry = registry
        self.config = config
        self.inputs = JobInputs(inputs_dir)
        self.owner = process_holder_id()  # this process, in job leases
        self.lease_s = config.video_job_lease_s
        self._trackers: dict[str, _Tracker] = {}
        self._group: anyio.abc.TaskGroup | None = None

    # ----- lifecycle (the gateway's lifespan owns the task group) ----------------------------------

    def attach(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        group.start_soon(self._keep_leases, name="video-job leases")

    async def detach(self) -> None:
        """Stop tracking; the leases are given up at once, so another process (or a restart) resumes the jobs."""
        self._group = None
        self._trackers.clear()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self.store.renew_job_leases(self.owner, 0.0)
            except Exception:
                log.warning("could not release the video job leases; they run out in %g s", self.lease_s)

    async def resume_unfinished(self) -> int:
        """Take over every unfinished job no live process tracks (at start, and in every sweep)."""
        self._check_running()
        resumed = 0
        stopped = await self._stopped_holders()
        for job in await self.store.claim_orphaned_jobs(self.owner, self.lease_s, limit=1000, stopped=stopped):
            if job.id not in self._trackers and await self._adopt(job) is not None:
                resumed += 1
        if resumed:
            log.info("resumed tracking of %d unfinished video job(s)", resumed)
        return resumed

    async def look_after(self, jobs: list[JobRecord]) -> None:
        """Take over the unfinished jobs among `jobs` that no live process tracks (a jobs:// read asked for them)."""
        orphans = [job for job in jobs if not job.finished and job.id not in self._trackers]
        if self._group is None or not orphans:
            return
        if len(orphans) == 1:
            await self._take_over(orphans[0])
        else:
            await self.resume_unfinished()

    async def _keep_leases(self) -> None:
        """Renew this process's leases every third of `lease_s`, and sweep for jobs whose process stopped."""
        while True:
            await anyio.sleep(self.lease_s / 3)
            try:
                if self._trackers:
                    await self.store.renew_job_leases(self.owner, self.lease_s)
                await self.resume_unfinished()
            except Exception:  # a store outage: try again next time (leases last three periods)
                log.warning("could not renew video job leases", exc_info=True)

    # ----- what the tools call ---------------------------------------------------------------------

    async def create(
        self,
        card: ModelCard,
        *,
        prompt: str,
        image: ReferenceImage | None,
        duration: float | None,
        aspect_ratio: str | None,
        client_request_id: str | None,
        caller: Caller,
    ) -> tuple[JobRecord, bool]:
        """Record a job (or find the one with this client_request_id) and start tracking it: (job, created)."""
        job_id = f"vid-{secrets.token_hex(10)}"
        image_file = await self.inputs.save(job_id, image) if image is not None else None
        job = JobRecord(
            id=job_id,
            provider=card.provider,
            model=card.id,
            upstream_model=card.upstream,
            arguments=VideoArguments(
                prompt=prompt,
                duration=duration,
                aspect_ratio=aspect_ratio,
                has_image=image is not None,
                image_file=image_file,
                idempotency_key=new_idempotency_key(),
            ),
            client_request_id=client_request_id,
            caller=caller.id,
        )
        self._check_running()
        stored = await self.store.create_job(job, owner=self.owner, lease_s=self.lease_s)
        if stored.id == job.id:
            self._start(stored)
        else:  # the job this client_request_id already made: tracked here, elsewhere, or taken over
            if image_file:
                await self.inputs.drop(image_file)
            if not stored.finished and stored.id not in self._trackers:
                await self._take_over(stored)
        return stored, stored.id == job.id

    async def get(self, job_id: str, *, caller: Caller | None = None) -> JobRecord:
        """The job; for a `caller` that is not an admin, only its own (another's answers as not found: ids are not
        disclosed). Without `caller`, any job (the engine's own reads)."""
        job = await self.store.get_job(job_id) if JOB_ID.match(job_id) else None
        scope = caller.jobs_scope if caller is not None else None
        if job is None or (scope is not None and job.caller != scope):
            raise invalid_argument(
                "job_id",
                f"No video job '{job_id}'. Job ids look like vid-0123456789abcdef0123 and come from "
                "generate_video; jobs://recent lists the latest ones.",
                code="job_not_found",
            )
        return job

    async def wait(self, job_id: str, wait_s: float, on_update: OnUpdate, *, caller: Caller | None = None) -> JobRecord:
        """Wait up to `wait_s` for the job to finish, calling `on_update` now and after every poll."""
        job = await self.get(job_id, caller=caller)
        deadline = anyio.current_time() + wait_s
        while True:
            if not job.finished:
                tracker = self._trackers.get(job.id) or await self._take_over(job)
                if tracker is not None:
                    return await self._wait_on(tracker, deadline, on_update)
                job = await self.get(job_id)  # as the process tracking it left it (or _take_over, failing it)
            await on_update(job)
            remaining = _end(job, deadline) - anyio.current_time()
            if job.finished or remaining <= 0:
                return job
            await anyio.sleep(min(FOLLOW_EVERY_S, remaining))  # another process tracks it: follow the store

    async def _wait_on(self, tracker: _Tracker, deadline: float, on_update: OnUpdate) -> JobRecord:
        while True:
            changed = tracker.next_change()
            job = tracker.job
            await on_update(job)
            remaining = _end(job, deadline) - anyio.current_time()
            if job.finished or remaining <= 0:
                return job
            with anyio.move_on_after(remaining):
                await changed.wait()

    def card_for(self, job: JobRecord) -> ModelCard:
        """The card a job's provider calls go through; built from the record if the config no longer has it."""
        card = self.catalog.get(job.model)
        if card is not None and card.provider == job.provider:
            return card
        return ModelCard(id=job.model, kind="video", provider=job.provider, upstream=job.upstream_model)

    # ----- tracking --------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._group is None:
            raise ServerFault(
                "Video job tracking is not running (the gateway was not started with its lifespan).",
                code="jobs_not_running",
            )

    def _start(self, job: JobRecord) -> _Tracker:
        """Track a job this process holds the lease of."""
        self._check_running()
        assert self._group is not None
        tracker = self._trackers[job.id] = _Tracker(job)
        self._group.start_soon(self._track, tracker, name=f"video-job {job.id}")
        return tracker

    async def _take_over(self, job: JobRecord) -> _Tracker | None:
        """Track `job` if no live process does (its lease is ours now); None if one does, or it is finished."""
        self._check_running()
        claimed = await self.store.claim_job(job.id, self.owner, self.lease_s, stopped=await self._stopped_holders())
        return None if claimed is None else await self._adopt(claimed)

    async def _stopped_holders(self) -> list[str]:
        """Lease holders provably gone (a process on this host that was killed): their jobs need not wait out
        their leases."""
        return [holder for holder in await self.store.job_lease_holders() if is_gone(holder)]

    async def _adopt(self, job: JobRecord) -> _Tracker | None:
        """Track a job whose lease this process has just taken from a process that stopped."""
        if job.id in self._trackers:
            return self._trackers[job.id]
        if job.status == "submitting" and not self.router.reliability.honours_idempotency_key(job.provider):
            # Caught mid-submission by a stop: it may run (and be billed) upstream. Sending it again blindly
            # could pay twice, so it fails with an explanation; its client_request_id stays taken.
            await self._fail(job, outcome_unknown(job.provider))
            return None
        return self._start(job)

    async def _track(self, tracker: _Tracker) -> None:
        job = tracker.job
        try:
            if job.status == "submitting":
                job = await self._submit(job, tracker)
            interval = self.config.video_poll_initial_s
            failures = 0
            while not job.finished:
                if self._expired(job):
                    job = await self._fail(job, timeout_error(job, self.config.video_job_timeout_s))
                    break
                delay = interval
                try:
                    routed = await self.router.video_status(
                        self.card_for(job), job.task_id or "", caller=Caller.of_record(job.caller)
                    )
                except GatewayError as error:
                    failures = 0 if error.retryable else failures + 1
                    if failures >= PERMANENT_POLL_FAILURES:
                        job = await self._fail(job, error.body())
                        break
                    delay = max(delay, min(error.retry_after_s or 0.0, MAX_RETRY_AFTER_S))
                    log.info("video job %s: status poll failed (%s), trying again", job.id, error.code or error.type)
                else:
                    failures = 0
                    job = await self._apply(job, routed.value, tracker)
                    delay = max(delay, min(routed.value.retry_after_s or 0.0, MAX_RETRY_AFTER_S))
                tracker.publish(job)
                if job.finished:
                    break
                await anyio.sleep(delay)
                interval = min(interval * 1.5, self.config.video_poll_max_s)
        except _LeaseLost:
            log.warning("video job %s is tracked by another process now (this one missed its lease)", job.id)
        except Exception:
            log.exception("tracking video job %s stopped on an unexpected error; it resumes on the next call", job.id)
        finally:
            self._trackers.pop(job.id, None)
            tracker.publish(job)

    async def _submit(self, job: JobRecord, tracker: _Tracker) -> JobRecord:
        arguments = job.arguments
        image_file = arguments.image_file
        try:
            image_b64 = await self.inputs.load(image_file) if image_file else None
            routed = await self.router.submit_video(
                self.card_for(job),
                prompt=arguments.prompt,
                image_b64=image_b64,
                duration=arguments.duration,
                aspect_ratio=arguments.aspect_ratio,
                idempotency_key=arguments.idempotency_key or new_idempotency_key(),
                job_id=job.id,
                caller=Caller.of_record(job.caller, await policy_of(self.store, job.caller)),  # the key's limits now
            )
        except GatewayError as error:
            if error.may_have_run:
                # The provider may have started it: keep client_request_id, so a repeat does not pay twice.
                if not isinstance(error, SubmissionOutcomeUnknown):  # that one already says so
                    error = error.with_context(
                        message=error.message
                        + " The provider may still have started the job; check its dashboard before retrying."
                    )
                failed = await self._fail(job, error.body())
            else:  # refused: nothing runs upstream, so a corrected call may reuse the client_request_id
                failed = await self._fail(job, error.body(), client_request_id=None)
            if image_file:
                await self.inputs.drop(image_file)
            return failed
        status = routed.value
        updated = await self.store.update_job(
            job.id,
            status="running",
            task_id=status.task_id,
            provider=routed.card.provider,
            model=routed.card.id,
            upstream_model=routed.card.upstream,
            progress=status.progress,
        )
        job = updated or job
        if image_file:
            await self.inputs.drop(image_file)
        log.info("video job %s submitted to %s as task %s", job.id, job.provider, job.task_id)
        if status.status != "running":
            job = await self._apply(job, status, tracker)
        return job

    async def _apply(self, job: JobRecord, status: VideoStatus, tracker: _Tracker) -> JobRecord:
        if status.status == "running":
            return await self._update(job, status="running", progress=status.progress)
        if status.status == "failed":
            return await self._fail(job, generation_failed(job, status))
        job = await self._update(job, progress=100.0)
        tracker.publish(job)  # "downloading": the waiting call hears it before the download
        if await self.store.claim_job(job.id, self.owner, self.lease_s) is None:
            raise _LeaseLost(job.id)  # this process stalled past its lease: the one that took over downloads it
        result = await download_video(self.router, self.registry, self.config, job, self.card_for(job), status)
        if result.video is not None:
            await remember(self.store, result.video, caller=job.caller, tool="generate_video", model=job.model)
        return await self._update(job, status="completed", progress=100.0, result=result)

    # ----- helpers ---------------------------------------------------------------------------------

    async def _update(self, job: JobRecord, **fields: Any) -> JobRecord:
        return await self.store.update_job(job.id, **fields) or job.updated(fields)

    async def _fail(self, job: JobRecord, error: JobError, **fields: Any) -> JobRecord:
        log.info("video job %s failed: %s", job.id, error.message)
        return await self._update(job, status="failed", error=error, **fields)

    def _expired(self, job: JobRecord) -> bool:
        return (datetime.now(UTC) - job.created_at).total_seconds() > self.config.video_job_timeout_s


class _LeaseLost(Exception):
    """Another process holds the job's lease now."""


def _end(job: JobRecord, deadline: float) -> float:
    """When a wait for `job` ends: at the deadline, or, while its submission is in flight, a bounded grace past it
    (a refusal is then reported in the same call)."""
    return deadline + (SUBMIT_GRACE_S if job.status == "submitting" else 0.0)
