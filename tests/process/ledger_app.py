"""A worker process whose every job start is written to a ledger outside the job store.

Run as ``python -m tests.process.ledger_app`` with the environment:
FASTJOBS_TEST_URL, FASTJOBS_TEST_PREFIX, FASTJOBS_TEST_RUNS (the ledger file),
LEDGER_LEASE, LEDGER_CONCURRENCY, LEDGER_PREFETCH, LEDGER_SLEEP (seconds per job),
LEDGER_SYNC (1: a plain def handler on the thread pool).
Each start appends ``<job number> <pid> <time.time()>`` with one O_APPEND write,
so lines of concurrent workers never interleave.
"""

from __future__ import annotations

import asyncio
import os
import time

import fastjobs

env = os.environ
app = fastjobs.App(env["FASTJOBS_TEST_URL"], prefix=env["FASTJOBS_TEST_PREFIX"], lease=float(env.get("LEDGER_LEASE", "30")))
_ledger = os.open(env["FASTJOBS_TEST_RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
_sleep = float(env.get("LEDGER_SLEEP", "0"))


def _record(n: int) -> None:
    os.write(_ledger, f"{n} {os.getpid()} {time.time():.6f}\n".encode())


@app.task(name="ledger.step")
async def step(n: int) -> int:
    _record(n)
    await asyncio.sleep(_sleep)
    return n


@app.task(name="ledger.step_sync")
def step_sync(n: int) -> int:
    _record(n)
    time.sleep(_sleep)
    return n


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(app.run_worker(
        concurrency=int(env.get("LEDGER_CONCURRENCY", "10")),
        prefetch=int(env.get("LEDGER_PREFETCH", "0")) or None,
        threads=int(env.get("LEDGER_CONCURRENCY", "10")),
        poll_interval=0.2,
    ))
