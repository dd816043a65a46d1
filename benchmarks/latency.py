"""``python -m benchmarks.latency``: enqueue-to-start latency alone, at an arrival rate you fix.

``python -m benchmarks`` measures latency after its throughput stages, at half of the
end-to-end rate it just measured: two builds are then compared at whatever rate each
reached, on a namespace that already holds the earlier stages' jobs. This runs that stage
alone: a worker waits (concurrency 100, async handler) while single jobs are enqueued
``--rate`` a second, each awaited, for ``--samples`` jobs, and reports p50 / p90 / p99 of
enqueue-to-start and the rate reached (a rate the producer cannot reach is the round
trip's limit: it then sends back to back). On Redis it also reports the server's commands
per job (``INFO commandstats``, reset at the start: use a server nothing else uses).

On Redis and PostgreSQL it first times a bare round trip (``PING``; ``SELECT 1``) sent at
the same pace, and prints its p50 / p99 beside the jobs' figures. A job's path from
enqueue to start holds two round trips (the enqueue reaches the server, whose wake-up
reaches the waiting worker, whose claim goes there and back), so twice that p50 is what
the machine alone costs a job at this pace. It is not the back-to-back round trip: on a
VM an idle process's core sleeps between jobs, and waking it adds to every hop (measured
2026-12-07 on a 2-core VM: PING 0.12 ms back to back, 0.35 ms 5 ms apart, 0.46 ms 20 ms
apart).

Examples::

    python -m benchmarks.latency --backend redis --rate 1500 --samples 5000
    python -m benchmarks.latency --backend postgres --rate 500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import numpy as np

import fastjobs

from . import URLS, loop_runner, stop_and_wipe

WARM_UP = 200
"""Jobs run before the clock starts (connections open, scripts loaded, caches warm)."""
ROUND_TRIPS = 500
"""Bare round trips timed at the run's pace, at most (fewer when ``--samples`` is smaller)."""


async def round_trips(backend: str, url: str, interval: float, count: int) -> list[float]:
    """Seconds each of ``count`` bare round trips took, sent ``interval`` seconds apart.

    Empty for memory://, which has none.
    """
    if backend == "redis":
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url)

        async def once() -> None:
            await client.ping()

        async def close() -> None:
            await client.aclose()
    elif backend == "postgres":
        import asyncpg

        conn = await asyncpg.connect(url)

        async def once() -> None:
            await conn.fetchval("SELECT 1")

        async def close() -> None:
            await conn.close()
    else:
        return []
    took: list[float] = []
    try:
        await once()
        started = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i * interval - time.perf_counter()))
            t = time.perf_counter()
            await once()
            took.append(time.perf_counter() - t)
    finally:
        await close()
    return took


async def run(backend: str, rate: float, samples: int) -> dict[str, Any]:
    app = fastjobs.App(URLS[backend](), prefix="latency" + uuid.uuid4().hex[:8], result_ttl=3600)
    latencies: list[float] = []

    @app.task(name="timed", queue="bench")
    async def timed(sent: float) -> None:
        latencies.append(time.time() - sent)

    worker = app.worker(["bench"], concurrency=100, handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.3)
        for _ in range(WARM_UP):
            await timed.enqueue(time.time())
        while len(latencies) < WARM_UP:
            await asyncio.sleep(0.01)
        latencies.clear()
        interval = 1.0 / rate
        # While the worker waits, as it does between the jobs below; before the counts restart.
        rtt = np.array(await round_trips(backend, app.url, interval, min(samples, ROUND_TRIPS))) * 1000.0
        admin = None
        if backend == "redis":
            import redis.asyncio

            admin = redis.asyncio.Redis.from_url(app.url)
            await admin.config_resetstat()
        started = time.perf_counter()
        for i in range(samples):
            await asyncio.sleep(max(0.0, started + i * interval - time.perf_counter()))
            await timed.enqueue(time.time())
        sent_s = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while len(latencies) < samples and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        ms = np.array(latencies) * 1000.0
        out: dict[str, Any] = {
            "backend": backend, "rate_asked": rate, "rate_reached": round(samples / sent_s, 1), "samples": samples,
            "lost": samples - len(ms),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)},
        }
        if len(rtt):
            out["round_trip_p50_ms"] = round(float(np.percentile(rtt, 50)), 3)
            out["round_trip_p99_ms"] = round(float(np.percentile(rtt, 99)), 3)
        if admin is not None:
            stats = await admin.info("commandstats")
            await admin.aclose()
            out["commands_per_job"] = {
                name[len("cmdstat_"):]: round(v["calls"] / samples, 2) for name, v in sorted(stats.items())
                if v["calls"] >= samples / 100
            }
        return out
    finally:
        await stop_and_wipe(app, worker, runner)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(URLS), default="redis")
    parser.add_argument("--rate", type=float, default=1000.0, help="jobs a second to aim at")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = loop_runner()(run(args.backend, args.rate, args.samples))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['backend']}: {out['samples']} jobs at {out['rate_reached']:,.0f}/s (asked {args.rate:,.0f}), "
              f"lost {out['lost']}; enqueue to start p50 {out['p50_ms']:.3f} ms, p90 {out['p90_ms']:.3f}, "
              f"p99 {out['p99_ms']:.3f}")
        if "round_trip_p50_ms" in out:
            print(f"a bare round trip at this pace: p50 {out['round_trip_p50_ms']:.3f} ms, "
                  f"p99 {out['round_trip_p99_ms']:.3f} (a job's path holds two)")
        if "commands_per_job" in out:
            print("server commands per job: " + ", ".join(f"{k} {v}" for k, v in out["commands_per_job"].items()))
    return 0 if out["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
