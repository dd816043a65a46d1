"""``python -m benchmarks.latency``: enqueue-to-start latency alone, at an arrival rate you fix.

``python -m benchmarks`` measures latency after its throughput stages, at half of the
end-to-end rate it just measured: two builds are then compared at whatever rate each
reached, on a namespace that already holds the earlier stages' jobs. This runs that stage
alone: a worker waits (concurrency 100, async handler) while single jobs are enqueued
``--rate`` a second, each awaited, for ``--samples`` jobs, and reports p50 / p90 / p99 of
enqueue-to-start and the rate reached (a rate the producer cannot reach is the round
trip's limit: it then sends back to back). On Redis it also reports the server's commands
per job (``INFO commandstats``, reset at the start: use a server nothing else uses).

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
        admin = None
        if backend == "redis":
            import redis.asyncio

            admin = redis.asyncio.Redis.from_url(app.url)
            await admin.config_resetstat()
        interval = 1.0 / rate
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
        if "commands_per_job" in out:
            print("server commands per job: " + ", ".join(f"{k} {v}" for k, v in out["commands_per_job"].items()))
    return 0 if out["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
