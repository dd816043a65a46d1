"""The App the fault suite's worker processes run: ``python -m fastjobs worker benchmarks.faults.workerapp:app``.

Configured from the environment: ``FAULTS_URL``, ``FAULTS_PREFIX``,
``FAULTS_LEASE`` (seconds), ``FAULTS_RESULT_TTL`` (seconds), ``FAULTS_LEDGER`` (the ledger file every
execution is appended to) and ``FAULTS_CLOCK_SKEW`` (seconds added to this
process's ``time.time``: the clock-skew scenario). The producer builds the
same tasks with :func:`build_app` and no ledger.

``work(ms, crash)`` records its start, sleeps ``ms`` milliseconds, records its
end and returns ``[pid, attempt]`` (so the stored result says whose outcome
won). On its first attempt only, ``crash`` kills the process at one point:

* ``in-handler``: after the start record (the handler never ends);
* ``late``: like ``in-handler``, after the sleep (so the worker has claimed ahead);
* ``before-ack``: after the end record, before the worker sends the ack (an
  ``os._exit`` queued on the event loop runs before the ack flush, which is
  queued after it);
* ``after-ack``: once the backend reports the job succeeded.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import fastjobs

from benchmarks.faults.ledger import END, START, LedgerWriter, true_time

WORK_QUEUE = "work"
DELAYED_QUEUE = "delayed"
"""Served before ``work`` (a worker serves its queues sorted), so a due job starts at once."""
BAD_QUEUE = "bad"
CRASH_EXIT = 70
WORK_ATTEMPTS = 25
"""A job may be claimed by several workers that all get killed: it must not go dead for that."""


def skew_clock(seconds: float) -> None:
    """Shift this process's ``time.time`` / ``time.time_ns`` (what fastjobs reads as wall time)."""
    real, real_ns = time.time, time.time_ns
    time.time = lambda: real() + seconds
    time.time_ns = lambda: real_ns() + int(seconds * 1e9)


def build_app(url: str, prefix: str, lease: float, ledger: str | None = None, **options: Any) -> fastjobs.App:
    """The suite's App: its tasks, writing to ``ledger`` when they run."""
    app = fastjobs.App(url, prefix=prefix, lease=lease, **options)
    writer = LedgerWriter(ledger) if ledger else None
    pending: set[asyncio.Task[None]] = set()

    @app.task(name="faults.work", queue=WORK_QUEUE, context=True, max_attempts=WORK_ATTEMPTS,
              backoff=fastjobs.Fixed(0))
    async def work(ctx: fastjobs.Context, ms: int = 0, crash: str = "") -> list[int]:
        assert writer is not None, "the producer never runs jobs"
        writer.write(START, ctx.job_id, ctx.attempt)
        first = ctx.attempt == 1
        if crash == "in-handler" and first:
            os._exit(CRASH_EXIT)
        if ms:
            try:
                await asyncio.sleep(ms / 1000)
            except asyncio.CancelledError:  # given back at shutdown: this run ended, unfinished
                writer.write(END, ctx.job_id, ctx.attempt, ok=False)
                raise
        if crash == "late" and first:
            os._exit(CRASH_EXIT)
        writer.write(END, ctx.job_id, ctx.attempt)
        if crash == "before-ack" and first:
            asyncio.get_running_loop().call_soon(os._exit, CRASH_EXIT)
        elif crash == "after-ack" and first:
            task = asyncio.get_running_loop().create_task(_exit_once_acked(app, ctx.job_id))
            pending.add(task)
        return [os.getpid(), ctx.attempt]

    @app.task(name="faults.delayed", queue=DELAYED_QUEUE, context=True, max_attempts=WORK_ATTEMPTS)
    async def delayed(ctx: fastjobs.Context, due: float, ms: int = 0) -> float:
        """Records how early it started against ``due``, the true time it may start at."""
        assert writer is not None
        writer.write(START, ctx.job_id, ctx.attempt)
        if ms:
            await asyncio.sleep(ms / 1000)
        writer.write(END, ctx.job_id, ctx.attempt)
        return true_time() - due

    @app.task(name="faults.poison", queue=BAD_QUEUE, context=True, max_attempts=2, backoff=fastjobs.Fixed(0))
    async def poison(ctx: fastjobs.Context) -> None:
        assert writer is not None
        writer.write(START, ctx.job_id, ctx.attempt)
        raise RuntimeError("poison: this job fails every attempt")

    return app


async def _exit_once_acked(app: fastjobs.App, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = await app.get_job(job_id)
        if info is not None and info.state == "succeeded":
            os._exit(CRASH_EXIT)
        await asyncio.sleep(0.005)


_app: fastjobs.App | None = None


def __getattr__(name: str) -> Any:
    """``app`` is built on first use, from the environment (the producer imports this module without it)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        skew = float(os.environ.get("FAULTS_CLOCK_SKEW", "0") or 0)
        if skew:
            skew_clock(skew)
        options = {"result_ttl": float(os.environ["FAULTS_RESULT_TTL"])} if os.environ.get("FAULTS_RESULT_TTL") else {}
        _app = build_app(os.environ["FAULTS_URL"], os.environ["FAULTS_PREFIX"],
                         float(os.environ.get("FAULTS_LEASE", "2")), os.environ["FAULTS_LEDGER"], **options)
    return _app
