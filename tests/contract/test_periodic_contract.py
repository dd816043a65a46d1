"""Periodic tasks on every backend: each tick runs once however many workers run."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import fastjobs
from fastjobs.periodic import Schedule, tick_job_id


async def test_each_tick_runs_once_with_three_workers(app: fastjobs.App) -> None:
    runs: list[None] = []

    @app.periodic(0.2, name="tick", misfire_grace=0.15)
    async def tick() -> None:
        runs.append(None)

    workers = [app.worker(handle_signals=False) for _ in range(3)]
    running = [asyncio.ensure_future(w.run()) for w in workers]
    await asyncio.sleep(1.5)
    for w in workers:
        w.request_stop()
    await asyncio.gather(*running)

    backend = await app.backend()
    done = await backend.list_jobs(fastjobs._core.SUCCEEDED, limit=1000)
    ticks = sorted(j.id for j in done)
    assert 5 <= len(ticks) <= 9, ticks  # 1.5 s of 0.2 s ticks, give or take the edges
    assert len(runs) == len(ticks) == len(set(ticks))
    assert sum(w.succeeded for w in workers) == len(ticks)
    assert all(t.startswith("tick-") for t in ticks)


async def test_a_stale_tick_is_skipped_and_an_interval_tick_is_on_time(app: fastjobs.App) -> None:
    ran: list[float] = []

    @app.periodic("0 0 1 1 *", name="new_year")  # its latest tick is months old: skipped, not replayed
    def new_year() -> None:
        ran.append(-1.0)

    @app.periodic(0.5, name="half", misfire_grace=0.4)
    async def half() -> None:
        ran.append(0.0)

    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.sleep(1.2)
    worker.request_stop()
    await runner
    assert -1.0 not in ran
    assert 2 <= len(ran) <= 4
    backend = await app.backend()
    now = await backend.now()
    stale = tick_job_id("new_year", Schedule("0 0 1 1 *").latest(now))
    assert await app.get_job(stale) is None


def test_schedules_compute_ticks_in_their_time_zone() -> None:
    paris = Schedule("30 8 * * *", tz="Europe/Paris")
    # 2026-07-01 10:00 UTC is 12:00 in Paris (UTC+2): today's 08:30 Paris tick was 06:30 UTC.
    now = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    assert paris.latest(now) == dt.datetime(2026, 7, 1, 6, 30, tzinfo=dt.timezone.utc).timestamp()
    assert paris.next_after(now) == dt.datetime(2026, 7, 2, 6, 30, tzinfo=dt.timezone.utc).timestamp()
    # In winter Paris is UTC+1.
    winter = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    assert paris.latest(winter) == dt.datetime(2026, 1, 15, 7, 30, tzinfo=dt.timezone.utc).timestamp()
    on_tick = dt.datetime(2026, 7, 1, 6, 30, tzinfo=dt.timezone.utc).timestamp()
    assert paris.latest(on_tick) == on_tick  # a tick at exactly now is due now
    every = Schedule(dt.timedelta(seconds=90))
    assert every.latest(200.0) == 180.0 and every.next_after(180.0) == 270.0
    assert tick_job_id("a", 1.0) != tick_job_id("b", 1.0) != tick_job_id("a", 2.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("not cron",), {}, "invalid cron expression"),
        (("0 0 30 2 *",), {}, "never falls due"),
        (("* * * * *",), {"tz": "Mars/Olympus"}, "unknown time zone"),
        ((0,), {}, "interval must be a positive number"),
        ((5.0,), {"tz": "UTC"}, "tz= applies to cron expressions"),
        ((5.0,), {"misfire_grace": 7200.0}, "must be shorter than the App's result_ttl"),
    ],
)
def test_bad_schedules_are_refused_at_registration(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    app = fastjobs.App()
    with pytest.raises((fastjobs.InvalidOptionError, fastjobs.ConfigurationError), match=message):
        app.periodic(*args, **kwargs)(lambda: None)  # type: ignore[arg-type]


async def test_a_failing_schedule_does_not_starve_the_others(app: fastjobs.App) -> None:
    ran: list[str] = []

    @app.periodic(0.2, name="good", misfire_grace=0.15)
    async def good() -> None:
        ran.append("good")

    @app.periodic(0.2, name="broken", misfire_grace=0.15)
    async def broken() -> None:
        ran.append("broken")

    class Broken(Schedule):
        __slots__ = ()

        def latest(self, now: float) -> float:
            raise RuntimeError("this schedule cannot say when it falls")

    app.schedules["broken"] = Broken(0.2, misfire_grace=0.15)
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.sleep(1.0)
    worker.request_stop()
    await runner
    assert "broken" not in ran and ran.count("good") >= 3
