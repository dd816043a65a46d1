"""``python -m benchmarks.redis_scripts``: the Redis server's cost of each script stage, per job.

Drives the Redis backend directly (no worker): enqueues N no-op jobs in batches,
then claims and acknowledges them (SUCCEED, no result, with a history row per
ack call as the worker sends) in the given batch sizes, and reports for each
stage (enqueue, claim, ack) the server's CPU microseconds per job (``INFO cpu``)
and, with ``--callgrind-pid``, the server's instructions per job: run the
server under ``valgrind --tool=callgrind`` and pass its pid; each stage ends
with ``callgrind_control -d`` and its dump's total is read. Instruction counts
do not drift with the machine's load, CPU times do (by 2x on a busy machine).

Example::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg/out.%p redis-server --port 6393 --save "" &
    FASTJOBS_REDIS_URL=redis://127.0.0.1:6393/0 python -m benchmarks.redis_scripts --jobs 20000 \\
        --callgrind-pid $! --callgrind-dir /tmp/cg
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import subprocess
import time
import uuid
from typing import Any

import fastjobs
from fastjobs.backends.values import Ack, HistoryRow
from fastjobs.backends.values import HISTOGRAM_BOUNDS

from . import URLS


STEADY_TTL = 1.0
"""``--steady``: seconds succeeded jobs are kept (the first round's are trimmed by the second's acks)."""


async def server_cpu(client: Any) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def dump_total(pid: int, folder: str) -> int:
    """Ask callgrind to dump what it counted since the last dump; that dump's instructions."""
    before = set(glob.glob(os.path.join(folder, f"*.{pid}.*")))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(600):
        new = set(glob.glob(os.path.join(folder, f"*.{pid}.*"))) - before
        if new:
            path = new.pop()
            for _ in range(100):
                with open(path) as f:
                    for line in f:
                        if line.startswith("totals:") or line.startswith("summary:"):
                            return int(line.split()[1])
                time.sleep(0.1)
        time.sleep(0.1)
    raise RuntimeError("callgrind wrote no dump")


async def run(jobs: int, enqueue_batch: int, claim_batch: int, ack_batch: int, history: bool,
              callgrind_pid: int | None, callgrind_dir: str, url: str | None = None,
              steady: bool = False) -> dict[str, dict[str, float]]:
    import redis.asyncio

    from tests.backends import wipe_namespace

    # steady: succeeded jobs are kept STEADY_TTL seconds, and a first, unmeasured round leaves N
    # of them past it, so that the measured acks also trim one finished job per job acked.
    app = fastjobs.App(url or URLS["redis"](), prefix="rscripts" + uuid.uuid4().hex[:8],
                       result_ttl=STEADY_TTL if steady else 3600)

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    backend = await app.backend()
    client = redis.asyncio.Redis.from_url(app.url)
    row = HistoryRow("bench", "noop", 0, 1, 0.0001, (1,) + (0,) * len(HISTOGRAM_BOUNDS))
    out: dict[str, dict[str, float]] = {}
    claimed: list[Any] = []

    async def enqueue() -> None:
        for done in range(0, jobs, enqueue_batch):
            await app.enqueue_many([noop.call() for _ in range(min(enqueue_batch, jobs - done))])

    async def claim() -> None:
        while len(claimed) < jobs:
            got = await backend.claim(["bench"], min(claim_batch, jobs - len(claimed)), 60.0)
            if not got:
                raise RuntimeError(f"claimed {len(claimed)} of {jobs}")
            claimed.extend(got)

    async def ack() -> None:
        for i in range(0, jobs, ack_batch):
            part = claimed[i:i + ack_batch]
            rows = [row._replace(runs=len(part), buckets=(len(part),) + (0,) * len(HISTOGRAM_BOUNDS))] if history else ()
            applied = await backend.ack_many([Ack(c.id, c.token, 0) for c in part], history=rows)
            if not all(applied):
                raise RuntimeError("an ack was not applied")

    try:
        if steady:
            for stage in (enqueue, claim, ack):
                await stage()
            claimed.clear()
            await asyncio.sleep(STEADY_TTL + 0.2)
        if callgrind_pid:
            dump_total(callgrind_pid, callgrind_dir)
        for name, stage in (("enqueue", enqueue), ("claim", claim), ("ack", ack)):
            cpu = await server_cpu(client)
            wall = time.perf_counter()
            await stage()
            wall = time.perf_counter() - wall
            cpu = await server_cpu(client) - cpu
            figures = {"server_us": round(cpu / jobs * 1e6, 2), "jobs_per_s": round(jobs / wall)}
            if callgrind_pid:
                figures["server_instr"] = round(dump_total(callgrind_pid, callgrind_dir) / jobs)
            out[name] = figures
    finally:
        await client.aclose()
        await app.close()
        await wipe_namespace(app.url, app.options.prefix)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_scripts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--enqueue-batch", type=int, default=1000)
    parser.add_argument("--claim-batch", type=int, default=500)
    parser.add_argument("--ack-batch", type=int, default=500)
    parser.add_argument("--no-history", action="store_true", help="ack calls carry no history row")
    parser.add_argument("--callgrind-pid", type=int, default=None)
    parser.add_argument("--callgrind-dir", default="/tmp")
    parser.add_argument("--steady", action="store_true",
                        help="measure the steady state: each ack call also trims as many finished jobs, past "
                             "their result_ttl, as it acks (an unmeasured first round leaves them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = asyncio.run(run(args.jobs, args.enqueue_batch, args.claim_batch, args.ack_batch, not args.no_history,
                          args.callgrind_pid, args.callgrind_dir, steady=args.steady))
    if args.json:
        print(json.dumps(out))
    else:
        for stage, figures in out.items():
            print(f"{stage:8} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
