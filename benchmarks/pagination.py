"""``python -m benchmarks --pagination``: what one page of ``search`` costs at 10,000 and 1,000,000 stored jobs.

A keyset page must cost the same whatever the number of jobs stored and however
deep the page is. For each backend and store size this fills a fresh namespace
with that many jobs (half queued, a quarter succeeded, a quarter dead, over
four queues and a few tasks and tags), then times a page of 50 (median of
``--repeat`` calls, in milliseconds):

* **first**: the newest page;
* **deep**: the page after a position in the middle of the store;
* per filter: no filter, ``state=queued``, ``state=dead``, ``state=dead`` +
  ``queue``, and ``task`` (a filter no backend seeks on: it scans at most
  ``SEARCH_SCAN`` candidates a call).

Examples::

    python -m benchmarks --pagination                         # memory, 10k and 1M
    python -m benchmarks --pagination --backend all --json
    python -m benchmarks --pagination --backend redis --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from fastjobs._core import DEAD, QUEUED
from fastjobs.backends import Ack, AckKind, Backend, BackendOptions, NewJob, create_backend
from fastjobs.backends.base import JobFilter, Position
from fastjobs.job import new_job_ids

QUEUES = ("q0", "q1", "q2", "q3")
TASKS = ("send_email", "resize", "report")
BATCH = 5_000
PAGE = 50


@dataclass
class PageResult:
    backend: str
    stored: int
    query: str
    first_ms: float
    deep_ms: float
    jobs_on_page: int
    """The fewer of the two pages' job counts (a scan-budgeted filter may return short pages)."""


def _new_jobs(n: int) -> list[NewJob]:
    ids = new_job_ids(n)
    return [
        NewJob(job_id, QUEUES[i % 4], 0, 0.0, 1, b"\x80", None, 0.0, (), 0, None, TASKS[i % 3], (f"tenant:{i % 50}",))
        for i, job_id in enumerate(ids)
    ]


async def fill(backend: Backend, total: int, progress: bool) -> tuple[float, float, float]:
    """``total`` jobs: half stay queued, a quarter succeed, a quarter die.

    Returns the backend's clock three quarters through the enqueues (claims take the oldest
    half, so that is the middle of the jobs left queued), between enqueues and acks, and at
    the middle of the acks: where each query's deep page starts."""
    finished = total // 2
    started = await backend.now()
    three_quarters = started
    done = 0
    while done < total:
        n = min(BATCH, total - done)
        await backend.enqueue_many(_new_jobs(n))
        if done < total * 3 // 4 <= done + n:
            three_quarters = await backend.now()
        done += n
        if progress and (done == total or done % (BATCH * 40) == 0):
            print(f"  enqueued {done:,}/{total:,}", file=sys.stderr, flush=True)
    between = await backend.now()
    acked = 0
    while acked < finished:
        # Rotate the queue order so that every queue has finished jobs on both sides of the middle.
        turn = (acked // 1000) % len(QUEUES)
        claims = await backend.claim([*QUEUES[turn:], *QUEUES[:turn]], min(1000, finished - acked), 600.0)
        if not claims:
            break
        kinds = [AckKind.SUCCEED if (acked + i) % 2 == 0 else AckKind.DEAD for i in range(len(claims))]
        await backend.ack_many([Ack(c.id, c.token, kind, b"\xc0") for c, kind in zip(claims, kinds)])
        acked += len(claims)
        if progress and (acked >= finished or acked % 200_000 == 0):
            print(f"  finished {acked:,}/{finished:,}", file=sys.stderr, flush=True)
    ended = await backend.now()
    return three_quarters, between, (between + ended) / 2


async def _timed(backend: Backend, where: JobFilter, after: Position | None, repeat: int) -> tuple[float, int]:
    times = []
    found = 0
    for _ in range(repeat):
        started = time.perf_counter()
        jobs, _ = await backend.search(where, PAGE, after)
        times.append((time.perf_counter() - started) * 1000)
        found = len(jobs)
    return statistics.median(times), found


# Each query, and where its middle lies: 0 = three quarters through the enqueues (the middle of
# the jobs left queued: live jobs are ordered by enqueued_at), 1 = between the enqueues and the
# acks, 2 = halfway through the acks (finished jobs are ordered by finished_at).
QUERIES: dict[str, tuple[JobFilter, int]] = {
    "any state": (JobFilter(), 1),
    "state=queued": (JobFilter(states=(QUEUED,)), 0),
    "state=dead": (JobFilter(states=(DEAD,)), 2),
    "state=dead queue=q1": (JobFilter(states=(DEAD,), queue="q1"), 2),
    "task=report (scan)": (JobFilter(task="report"), 1),
}


async def bench(kind: str, url: str, sizes: list[int], repeat: int, progress: bool) -> list[PageResult]:
    results: list[PageResult] = []
    for size in sizes:
        prefix = f"fjpage{uuid.uuid4().hex[:8]}"
        backend = create_backend(url, BackendOptions(prefix=prefix, result_ttl=86400.0, dead_ttl=86400.0, events=False))
        await backend.connect()
        try:
            if progress:
                print(f"{kind}: storing {size:,} jobs", file=sys.stderr)
            middles = await fill(backend, size, progress)
            for name, (where, at) in QUERIES.items():
                first_ms, found = await _timed(backend, where, None, repeat)
                middle: Position = (round(middles[at] * 1e6), "")
                deep_ms, deep_found = await _timed(backend, where, middle, repeat)
                found = min(found, deep_found)
                results.append(PageResult(kind, size, name, round(first_ms, 3), round(deep_ms, 3), found))
        finally:
            await backend.close()
            await wipe(url, prefix)
    return results


async def wipe(url: str, prefix: str) -> None:
    """Delete a benchmark's namespace (the test suite's wiper knows every backend's layout)."""
    from tests.backends import wipe_namespace

    await wipe_namespace(url, prefix)


def render(results: list[PageResult]) -> None:
    print(f"{'backend':<10}{'stored':>12}  {'query':<22}{'first ms':>10}{'deep ms':>10}{'jobs':>6}")
    for r in results:
        print(f"{r.backend:<10}{r.stored:>12,}  {r.query:<22}{r.first_ms:>10.2f}{r.deep_ms:>10.2f}{r.jobs_on_page:>6}")


def size_args(prog: str, doc: str, argv: list[str], repeat: int, what: str) -> tuple[argparse.Namespace, list[int], list[str]]:
    """The options --pagination and --dashboard share: parsed args, store sizes, backend kinds."""
    from . import URLS

    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*URLS, "all"], default="memory")
    parser.add_argument("--sizes", default="10000,1000000", help="store sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=repeat, help=f"{what}; the median is shown (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    return args, [int(s) for s in args.sizes.split(",")], list(URLS) if args.backend == "all" else [args.backend]


def main(argv: list[str]) -> int:
    from . import URLS

    args, sizes, kinds = size_args("python -m benchmarks --pagination", __doc__ or "", argv, 20, "calls per timing")
    results: list[PageResult] = []
    for kind in kinds:
        results.extend(asyncio.run(bench(kind, URLS[kind](), sizes, args.repeat, not args.json)))
    if args.json:
        print(json.dumps({"pages": [asdict(r) for r in results]}, indent=2))
    else:
        render(results)
    return 0
