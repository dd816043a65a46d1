"""fastjobs.testing.advance_time: its windows of periodic ticks follow each other even
when real time passes between two calls."""

from __future__ import annotations

import asyncio

import fastjobs
from fastjobs.periodic import tick_job_id
from fastjobs.testing import advance_time, capture_enqueues

INTERVAL = 0.05


async def test_no_tick_is_lost_when_real_time_passes_between_two_windows() -> None:
    app = fastjobs.App("memory://")

    @app.periodic(INTERVAL, name="fast")
    async def fast() -> None: ...

    with capture_enqueues(app) as enqueued:
        await advance_time(app, 0.5)
        await asyncio.sleep(0.2)  # real time passes between the calls (the test's own work, a burst worker)
        await advance_time(app, 0.5)
    ids = [job.id for job in enqueued]
    assert len(ids) == len(set(ids)) and all(job_id.startswith(tick_job_id("fast", 0.0)[:-1]) for job_id in ids)
    ticks = sorted(round(int(job_id.rsplit("-", 1)[1]) / 1000 / INTERVAL) for job_id in ids)
    # Every tick from the first to the last: the App's time, moved on and passing, has no hole.
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks
    await app.close()
