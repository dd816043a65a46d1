"""Periodic jobs: when each tick falls, and the job id that makes it run once.

A schedule is a cron expression (through croniter, in a time zone) or a plain
interval. Every worker of an App that has periodic tasks enqueues each due tick
with a job id derived from the task name and the tick's time, so however many
workers run, the backend stores one job per tick: the others' enqueues are
refused as duplicates (:class:`~fastjobs.DuplicateJobError`), atomically.

Missed ticks (no worker was running, or all were busy elsewhere) are not
replayed: a tick is enqueued only while it is at most ``misfire_grace`` seconds
old, so after an outage the most recent tick runs once if it is that fresh,
and older ones are skipped (logged). Ticks of an interval schedule fall on
whole multiples of the interval since the Unix epoch, so every worker agrees
on them without talking to each other.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App()
    >>> @app.periodic("*/5 * * * *", tz="Europe/Paris")  # doctest: +SKIP
    ... async def report() -> None: ...
    >>> @app.periodic(30.0)  # every 30 s
    ... def ping() -> None: ...
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, DuplicateJobError, InvalidOptionError

if TYPE_CHECKING:
    from .app import App
    from .backends.base import Backend

# The worker's logger: these lines are the worker's doing.
log = logging.getLogger("fastjobs.worker")

DEFAULT_MISFIRE_GRACE = 60.0
"""Seconds a tick may be late and still be enqueued."""


class Schedule:
    """When a periodic task's ticks fall: a cron expression in a time zone, or an interval.

    Args:
        spec: a cron expression (``"*/5 * * * *"``, five or six fields) or an
            interval in seconds (a number or a ``timedelta``).
        tz: IANA time zone name for a cron expression (default UTC).
        misfire_grace: seconds a tick may be late and still be enqueued.

    Example:
        >>> Schedule(60.0).latest(125.0)
        120.0
        >>> Schedule("0 * * * *").next_after(0.0)
        3600.0
    """

    __slots__ = ("spec", "interval", "tz", "misfire_grace", "_cron")

    def __init__(self, spec: str | float | _dt.timedelta, tz: str | None = None,
                 misfire_grace: float = DEFAULT_MISFIRE_GRACE) -> None:
        self.spec = spec
        self.misfire_grace = _positive("misfire_grace", misfire_grace)
        self.interval: float | None = None
        self._cron: Any = None
        if isinstance(spec, str):
            try:
                from croniter import croniter  # type: ignore[import-untyped, unused-ignore]
            except ImportError:  # pragma: no cover - depends on the install
                raise ConfigurationError(
                    "cron schedules need croniter: pip install 'fastjobs[cron]' (or give an interval in seconds)"
                ) from None
            if not croniter.is_valid(spec):
                raise InvalidOptionError(f"invalid cron expression {spec!r}: use five fields like '*/5 * * * *'")
            self._cron = croniter
            self.tz = _zone(tz)
            try:  # a valid expression can still name no date at all ("0 0 30 2 *": February 30)
                self.next_after(time.time())
            except Exception as exc:  # croniter's CroniterBadDateError and kin
                raise InvalidOptionError(f"cron expression {spec!r} never falls due: {exc}") from None
        else:
            if tz is not None:
                raise InvalidOptionError("tz= applies to cron expressions; an interval is the same in every zone")
            seconds = spec.total_seconds() if isinstance(spec, _dt.timedelta) else spec
            self.interval = _positive("the interval", seconds)
            self.tz = _dt.timezone.utc

    def __repr__(self) -> str:
        return f"Schedule({self.spec!r}, tz={self.tz!s})"

    def latest(self, now: float) -> float:
        """The most recent tick at or before ``now`` (epoch seconds)."""
        if self.interval is not None:
            return math.floor(now / self.interval) * self.interval
        # Cron ticks fall on whole seconds: the tick before floor(now) + 1 is the
        # latest one at or before now (croniter's get_prev excludes its start).
        start = _dt.datetime.fromtimestamp(math.floor(now) + 1, self.tz)
        return float(self._cron(self.spec, start).get_prev(float))

    def next_after(self, now: float) -> float:
        """The first tick strictly after ``now`` (epoch seconds)."""
        if self.interval is not None:
            return (math.floor(now / self.interval) + 1) * self.interval
        start = _dt.datetime.fromtimestamp(math.floor(now), self.tz)
        return float(self._cron(self.spec, start).get_next(float))


def tick_job_id(task_name: str, tick: float) -> str:
    """The one job id a tick of a task gets, on every worker.

    Example:
        >>> tick_job_id("app.report", 1_700_000_000.0) == tick_job_id("app.report", 1_700_000_000.0)
        True
    """
    digest = hashlib.blake2b(task_name.encode(), digest_size=8).hexdigest()
    return f"tick-{digest}-{round(tick * 1000)}"


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidOptionError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _zone(tz: str | None) -> _dt.tzinfo:
    if tz is None:
        return _dt.timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidOptionError(f"unknown time zone {tz!r}: use an IANA name like 'Europe/Paris' ({exc})") from None


async def run_schedules(app: App, backend: Backend) -> None:
    """Enqueue each periodic task's due tick; sleep until the next one falls. Runs until cancelled."""
    done: dict[str, float] = {}  # the last tick each schedule enqueued (or found taken, or skipped)
    while True:
        try:
            now = await backend.now()  # the backend's clock, as for delays and leases
        except Exception as exc:
            log.warning("periodic scheduling: the backend's clock failed (%s: %s); retrying in 1 s", type(exc).__name__, exc)
            await asyncio.sleep(1.0)
            continue
        wake = now + 60.0
        for name, plan in app.schedules.items():
            # Each schedule on its own: one that fails must not starve the others.
            try:
                tick = plan.latest(now)
                if done.get(name) != tick:
                    if now - tick <= plan.misfire_grace:
                        await _enqueue_tick(app, name, tick)
                    else:
                        log.debug("periodic %s: tick %s is %.0f s old; skipped", name, tick, now - tick)
                    done[name] = tick
                wake = min(wake, plan.next_after(now))
            except Exception as exc:
                log.warning("periodic %s failed (%s: %s); retrying in 1 s", name, type(exc).__name__, exc)
                wake = min(wake, now + 1.0)
        await asyncio.sleep(max(0.0, wake - now))


async def _enqueue_tick(app: App, name: str, tick: float) -> None:
    task = app.tasks[name]
    try:
        await app.enqueue_many([task.options(job_id=tick_job_id(name, tick)).call()])
    except DuplicateJobError:
        return  # another worker enqueued this tick first
    log.info("periodic %s: enqueued the tick of %s", name, _dt.datetime.fromtimestamp(tick, _dt.timezone.utc).isoformat())
