"""Batch callbacks and limits for the multi-process tests: every run appends one line to a file."""

import asyncio
import os
import time

import fastjobs

# The test process imports this module for its tasks only (it enqueues through an App of its own).
app = fastjobs.App(os.environ.get("FASTJOBS_TEST_URL", "memory://"), prefix=os.environ.get("FASTJOBS_TEST_PREFIX", "fastjobs"), lease=10.0)


def record(line: str) -> None:
    # O_APPEND writes of one short line are atomic across processes.
    with open(os.environ["FASTJOBS_TEST_RUNS"], "a") as runs:
        runs.write(f"{line}\n")


@app.task(name="member")
async def member(n: int) -> int:
    await asyncio.sleep(0.005)
    return n


@app.task(name="callback")
def callback(what: str) -> None:
    record(what)


@app.task(name="capped", limit=fastjobs.Limit(concurrency=2))
async def capped(n: int) -> None:
    started = time.time()
    await asyncio.sleep(0.1)
    record(f"capped {started} {time.time()}")


@app.task(name="rated", limit=fastjobs.Limit(rate=10, per=1.0))
async def rated(n: int) -> None:
    record(f"rated {time.time()}")
