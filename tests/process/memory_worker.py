"""A worker process for the signal tests: enqueues its own jobs on memory://, runs a
worker until signalled, then prints the final state of every job as JSON.

Usage: python memory_worker.py MODE GRACE
  MODE sync:  10 sync jobs of 3 s, concurrency 4, 2 threads (2 run, 2 wait for a thread)
  MODE async: 10 async jobs of 3 s, concurrency 3
  MODE stuck: 3 async jobs of 60 s, concurrency 3
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import fastjobs

mode, grace = sys.argv[1], float(sys.argv[2])
app = fastjobs.App("memory://")


def started(n: int) -> None:
    # One write call per line: print() from two threads can interleave text and newline.
    os.write(1, f"started {n}\n".encode())


@app.task(name="slow_sync")
def slow_sync(n: int) -> int:
    started(n)
    time.sleep(3.0)
    return n


@app.task(name="slow_async")
async def slow_async(n: int, seconds: float) -> int:
    started(n)
    await asyncio.sleep(seconds)
    return n


async def main() -> None:
    if mode == "sync":
        calls = [slow_sync.call(i) for i in range(10)]
        options = {"concurrency": 4, "threads": 2}
    elif mode == "async":
        calls = [slow_async.call(i, 3.0) for i in range(10)]
        options = {"concurrency": 3}
    else:
        calls = [slow_async.call(i, 60.0) for i in range(3)]
        options = {"concurrency": 3}
    handles = await app.enqueue_many(calls)
    print("ready", flush=True)
    await app.run_worker(shutdown_grace=grace, **options)
    report = {}
    for i, h in enumerate(handles):
        info = await app.get_job(h.id)
        assert info is not None
        report[i] = {"state": info.state, "attempt": info.attempt, "result": info.result}
    print("REPORT " + json.dumps(report), flush=True)


asyncio.run(main())
