"""What every scenario shares: its scale, its namespace, its producer App, its ledger and its result row.

A scenario is an ``async def scenario(run: Run, row: Row) -> None`` that fills its row. :class:`Run` gives
it a fresh key prefix (Redis) or schema (PostgreSQL) on the throwaway server,
a ledger file, a :class:`~benchmarks.faults.fleet.Fleet` of workers, the
producer App and bounded waits; :func:`execute` cleans all of it up, whatever
happens.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fastjobs

from benchmarks.faults import ledger
from benchmarks.faults.fleet import Fleet
from benchmarks.faults.ledger import Fault, Tally, true_time
from benchmarks.faults.workerapp import WORK_QUEUE, build_app

SWEEP = 1.5
"""Seconds after a lease expires within which some worker takes the job back: a worker
claims (and a claim recovers expired leases) at least once per poll interval (1 s), plus
0.5 s for a loaded 2-core machine."""


@dataclass
class Scale:
    """How big each scenario runs: ``--quick`` (CI, a few hundred jobs) or the full run."""

    quick: bool
    jobs: int
    lease: float
    kills: int
    outage: float
    sustained: float
    reps: int

    @classmethod
    def make(cls, quick: bool, jobs: int | None) -> Scale:
        if quick:
            return cls(True, jobs or 300, lease=1.0, kills=4, outage=2.0, sustained=10.0, reps=1)
        return cls(False, jobs or 5000, lease=2.0, kills=12, outage=6.0, sustained=60.0, reps=3)


@dataclass
class Check:
    """One must-hold condition and what was measured against it."""

    name: str
    ok: bool
    detail: str
    gap: str = ""
    """The issue-12 gap this check watches, if it is one of the five (shown when it fails)."""


@dataclass
class Row:
    id: int
    scenario: str
    backend: str
    must_hold: str
    jobs: int = 0
    faults: int = 0
    lost: int = 0
    duplicates: int = 0
    explained: int = 0
    overlaps: int = 0
    executions: int = 0
    """Handler runs in the ledger (every job once, plus the duplicates, minus the lost)."""
    recovery_s: float | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    status: str = ""
    """pass, FAIL, known (failing, but listed in --allow-known) or ERROR; set by the report."""

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str, gap: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail, gap))
        return bool(ok)

    def count(self, tally: Tally) -> None:
        self.jobs, self.lost = tally.jobs, len(tally.lost)
        self.duplicates, self.explained, self.overlaps = tally.duplicates, tally.explained, tally.overlaps
        self.executions = tally.executions
        if tally.torn:
            self.check("ledger records whole", False, f"{tally.torn} torn bytes at the end of the ledger")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


class Run:
    """One scenario on one backend: namespace, ledger, workers, producer, faults."""

    def __init__(self, backend: str, server: Any, scale: Scale, lease: float | None = None,
                 worker_env: dict[str, str] | None = None, **app_options: Any) -> None:
        self.backend = backend
        self.server = server
        self.scale = scale
        self.lease = lease or scale.lease
        self.prefix = "faults" + uuid.uuid4().hex[:10]
        self.dir = Path(tempfile.mkdtemp(prefix="fastjobs-faults-"))
        self.ledger = str(self.dir / "ledger.bin")
        env = {"FAULTS_URL": server.url, "FAULTS_PREFIX": self.prefix, "FAULTS_LEASE": str(self.lease),
               "FAULTS_LEDGER": self.ledger, **(worker_env or {})}
        self.fleet = Fleet(env, self.dir)
        self.app = build_app(server.url, self.prefix, self.lease, **app_options)
        self.acked: list[str] = []
        """Ids whose enqueue returned: these must all run."""
        self.enqueue_errors = 0
        self.error_types: dict[str, bool] = {}
        """What failed enqueues raised, and whether each is a FastjobsError."""
        self.server_faults: list[Fault] = []

    @property
    def faults(self) -> list[Fault]:
        return [*self.fleet.faults, *self.server_faults]

    def task(self, name: str) -> Any:
        return self.app.tasks[name]

    async def enqueue_work(self, n: int, ms: tuple[int, int] = (0, 0), crash: str = "", queue: str = WORK_QUEUE,
                           batch: int = 500) -> list[str]:
        """Enqueue ``n`` ``work`` jobs (sleeping a random ms in the range) and remember their ids."""
        work = self.task("faults.work").options(queue=queue)
        ids: list[str] = []
        for i in range(0, n, batch):
            calls = [work.call(random.randint(*ms), crash) for _ in range(min(batch, n - i))]
            ids += [h.id for h in await self.app.enqueue_many(calls)]
        self.acked += ids
        return ids

    def runs(self) -> list[ledger.Execution]:
        return ledger.read(self.ledger)[0]

    def ended(self, ids: Sequence[str] | None = None) -> int:
        done = {r.job for r in self.runs() if r.ok}
        return len(done) if ids is None else sum(1 for i in ids if i in done)

    async def until(self, condition: Callable[[], bool | Awaitable[bool]], timeout: float, poll: float = 0.05) -> bool:
        """Wait until ``condition`` holds, at most ``timeout`` seconds; say whether it held."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(poll)

    async def all_ended(self, timeout: float, ids: Sequence[str] | None = None) -> bool:
        wanted = list(self.acked if ids is None else ids)
        return await self.until(lambda: self.ended(wanted) >= len(wanted), timeout, poll=0.1)

    def tally(self, ids: Sequence[str] | None = None) -> Tally:
        return ledger.tally(self.ledger, self.acked if ids is None else ids, self.faults)

    async def produce(self, stop: asyncio.Event, rate: float, ms: tuple[int, int] = (1, 10), batch: int = 10) -> None:
        """Enqueue ``rate`` jobs/s in small batches until ``stop``; failed enqueues are counted and retried."""
        work = self.task("faults.work")
        interval = batch / rate
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                handles = await asyncio.wait_for(
                    self.app.enqueue_many([work.call(random.randint(*ms)) for _ in range(batch)]), 10)
                self.acked += [h.id for h in handles]
            except Exception as exc:  # noqa: BLE001 - a server outage: whatever it raises, try again
                self.enqueue_errors += 1
                if not isinstance(exc, asyncio.TimeoutError):
                    kind = type(exc)
                    self.error_types[f"{kind.__module__}.{kind.__qualname__}"] = isinstance(exc, fastjobs.FastjobsError)
                await asyncio.sleep(0.05)
                continue
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def close(self) -> None:
        self.fleet.close()
        try:
            await asyncio.wait_for(self.app.close(), 10)
        except Exception:  # noqa: BLE001 - the server may be the thing we broke
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def check_error_types(self, row: Row) -> None:
        """Producers may retry a FastjobsError safely: nothing else should reach them (issue 12, gap 3)."""
        untyped = sorted(name for name, typed in self.error_types.items() if not typed)
        row.check("producer errors typed", not untyped,
                  f"{self.enqueue_errors} failed enqueues raised "
                  + (", ".join(sorted(n.rsplit(".", 1)[-1] for n in self.error_types)) or "nothing")
                  + (f"; not FastjobsError: {', '.join(untyped)}" if untyped else ""), gap="gap 3")

    def restart_delays(self) -> list[float]:
        """For each run a process fault interrupted: seconds from the fault to the job's next start."""
        runs = self.runs()
        jobs = ledger.by_job(runs)
        delays = []
        for fault in self.fleet.faults:
            for r in runs:
                if r.pid == fault.pid and r.start <= fault.at and (r.end is None or r.end > fault.at):
                    later = [x.start for x in jobs[r.job] if x.start > fault.at]
                    if later:
                        delays.append(min(later) - fault.at)
        return delays


async def execute(scenario: Callable[[Run, Row], Awaitable[None]], run: Run, row: Row, budget: float) -> Row:
    """Run one scenario within ``budget`` seconds, filling ``row``; its workers are gone afterwards."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(scenario(run, row), budget)
    except asyncio.TimeoutError:
        row.error = f"did not finish within its {budget:.0f} s budget"
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        row.error = f"{type(exc).__name__}: {exc}"
        row.notes.append(traceback.format_exc(limit=4))
    finally:
        await run.close()
        row.seconds = time.monotonic() - started
    return row


def interrupted_at(fault: Fault, runs: Sequence[ledger.Execution]) -> list[ledger.Execution]:
    return [r for r in runs if r.pid == fault.pid and r.start <= fault.at and (r.end is None or r.end > fault.at)]


__all__ = ["SWEEP", "Check", "Fault", "Row", "Run", "Scale", "execute", "fastjobs", "interrupted_at", "true_time"]
