"""``python -m benchmarks --dashboard``: how fast the dashboard's API answers at 10,000 and 1,000,000 stored jobs.

For each backend and store size this fills a fresh namespace as ``--pagination``
does (half queued, a quarter succeeded, a quarter dead, four queues), mounts
``fastjobs.web.create_app`` and times each read endpoint the pages use through
httpx's ASGI transport (no network: the figure is the server's own time),
median of ``--repeat`` calls, in milliseconds. Needs ``pip install "fastjobs[web]" httpx``.

Examples::

    python -m benchmarks --dashboard --backend redis --sizes 10000,1000000
    python -m benchmarks --dashboard --backend all --json
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
import uuid
from dataclasses import asdict, dataclass

import fastjobs

from .pagination import fill, size_args, wipe

ENDPOINTS = (
    "api/stats",
    "api/queues",
    "api/workers",
    "api/jobs?limit=50",
    "api/jobs?state=dead&limit=50",
    "api/jobs?state=dead&queue=q1&limit=50",
    "api/jobs?task=report&limit=50",
    "api/dead/groups",
    "api/history/series?range=1h",
    "api/history/series?range=24h",
    "api/periodic",
)
TOKEN = "benchmark-token"


@dataclass
class EndpointResult:
    backend: str
    stored: int
    endpoint: str
    median_ms: float
    p90_ms: float
    status: int


async def bench(kind: str, url: str, sizes: list[int], repeat: int) -> list[EndpointResult]:
    import httpx

    from fastjobs.web import create_app

    results: list[EndpointResult] = []
    for size in sizes:
        prefix = f"fjdash{uuid.uuid4().hex[:8]}"
        app = fastjobs.App(url, prefix=prefix, result_ttl=86400.0, dead_ttl=86400.0)
        try:
            await fill(await app.backend(), size, True)
            web = create_app(app, token=TOKEN, live=False)
            transport = httpx.ASGITransport(app=web)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
                for endpoint in ENDPOINTS:
                    times = []
                    status = 0
                    for _ in range(repeat):
                        started = time.perf_counter()
                        response = await client.get("/" + endpoint)
                        times.append((time.perf_counter() - started) * 1000)
                        status = response.status_code
                    times.sort()
                    results.append(EndpointResult(kind, size, endpoint, round(statistics.median(times), 2),
                                                  round(times[math.ceil(len(times) * 0.9) - 1], 2), status))
        finally:
            await app.close()
            await wipe(url, prefix)
    return results


def main(argv: list[str]) -> int:
    from . import URLS

    args, sizes, kinds = size_args("python -m benchmarks --dashboard", __doc__ or "", argv, 10, "calls per endpoint")
    results: list[EndpointResult] = []
    for kind in kinds:
        results.extend(asyncio.run(bench(kind, URLS[kind](), sizes, args.repeat)))
    if args.json:
        print(json.dumps({"endpoints": [asdict(r) for r in results]}, indent=2))
        return 0
    print(f"{'backend':<10}{'stored':>11}  {'endpoint':<40}{'median ms':>10}{'p90 ms':>9}{'status':>7}")
    for r in results:
        print(f"{r.backend:<10}{r.stored:>11,}  {r.endpoint:<40}{r.median_ms:>10.2f}{r.p90_ms:>9.2f}{r.status:>7}")
    return 0
