"""``python -m benchmarks.postgres_bloat``: claims stay fast with a million finished jobs around.

The PostgreSQL backend moves finished jobs out of the hot table at their ack,
so the claim's partial index only ever covers work that can still run. This
script shows it on a real server (``FASTJOBS_DATABASE_URL``, default the local
one), in a fresh schema that it drops at the end:

1. claim + ack timings with 20,000 queued jobs and an empty history;
2. the same after 1,000,000 finished jobs were added to ``finished_jobs``
   (inserted server-side, the way a busy week of results would pile up);
3. the same after 200,000 jobs went through enqueue, claim and ack with the
   backend's own VACUUM switched off, which leaves dead rows in the hot table
   (and dead entries at the front of the claim index) until a VACUUM;
4. the same right after that VACUUM;
5. the same after 200,000 more, the backend vacuuming the hot table as it
   goes (autovacuum may be off, as on the CI server; see ``vacuum_hot_table``).

Each step reports the claim's server-side execution time (``EXPLAIN ANALYZE``
of the claim statement, rolled back: the figure least disturbed by other load
on the machine), the claim and ack round trips as a worker sees them (median
and p99 over batches of 100, job bodies of 80 bytes, each committed), and the
sizes of the hot and finished tables.

Example::

    python -m benchmarks.postgres_bloat --finished 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

from fastjobs.backends import Ack, AckKind, BackendOptions, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.job import new_job_id

URL = os.environ.get("FASTJOBS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def enqueue(backend: PostgresBackend, n: int) -> None:
    for start in range(0, n, 1000):
        await backend.enqueue_many(
            [NewJob(new_job_id(), "bloat", 0, 0.0, 3, os.urandom(80)) for _ in range(min(1000, n - start))]
        )


CLAIM_SQL = """UPDATE {s}.jobs j SET state = 2, attempt = j.attempt + 1, token = j.token + 1,
    started_at = now(), lease_until = now() + interval '30 s'
WHERE j.ctid = ANY (ARRAY(SELECT c.ctid FROM {s}.jobs c WHERE c.state = 1 AND c.queue = 'bloat'
    ORDER BY c.priority DESC, c.seq LIMIT 100 FOR UPDATE SKIP LOCKED))"""


async def claim_execution_ms(backend: PostgresBackend, runs: int = 30) -> float:
    """The claim statement's server-side execution time, rolled back: no network,
    no commit, so the machine's other load disturbs it least."""
    times = []
    async with backend._pool.acquire() as conn:  # type: ignore[union-attr]  # noqa: SLF001
        for _ in range(runs):
            tx = conn.transaction()
            await tx.start()
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + CLAIM_SQL.format(s=f'"{backend.schema}"')
            )
            await tx.rollback()
            times.append(json.loads(plan)[0]["Execution Time"])
    return round(statistics.median(times), 3)


async def timed_cycles(backend: PostgresBackend, cycles: int, batch: int = 100) -> dict[str, float]:
    claims: list[float] = []
    acks: list[float] = []
    claimed_jobs = 0
    for _ in range(cycles):
        started = time.perf_counter()
        got = await backend.claim(["bloat"], batch, 30.0)
        claimed = time.perf_counter()
        await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"ok") for c in got])
        acks.append(time.perf_counter() - claimed)
        claims.append(claimed - started)
        claimed_jobs += len(got)
    # Put the same number back so every step claims from an equally long queue.
    await enqueue(backend, claimed_jobs)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "claim_exec_ms": await claim_execution_ms(backend),
        "claim_p50_ms": round(statistics.median(claims) * 1000, 3),
        "claim_p99_ms": pct(claims, 0.99),
        "ack_p50_ms": round(statistics.median(acks) * 1000, 3),
        "ack_p99_ms": pct(acks, 0.99),
    }


async def sizes(backend: PostgresBackend) -> dict[str, Any]:
    schema = backend.schema
    row = (await backend._fetch(  # noqa: SLF001 - a measurement script may peek
        f"""SELECT pg_total_relation_size('"{schema}".jobs'), pg_total_relation_size('"{schema}".finished_jobs'),
                   (SELECT count(*) FROM "{schema}".jobs), (SELECT count(*) FROM "{schema}".finished_jobs)"""
    ))[0]
    return {
        "hot_table_mb": round(row[0] / 2**20, 1),
        "finished_table_mb": round(row[1] / 2**20, 1),
        "hot_rows": row[2],
        "finished_rows": row[3],
    }


async def claim_plan(backend: PostgresBackend) -> str:
    rows = await backend._fetch(  # noqa: SLF001
        f"""EXPLAIN SELECT c.id FROM "{backend.schema}".jobs c WHERE c.state = 1 AND c.queue = 'bloat'
            ORDER BY c.priority DESC, c.seq LIMIT 100 FOR UPDATE SKIP LOCKED"""
    )
    return "\n".join(r[0] for r in rows)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    schema = "bloat_" + uuid.uuid4().hex[:8]
    backend = PostgresBackend(URL, BackendOptions(prefix=schema))
    await backend.connect()
    report: dict[str, Any] = {"url": URL.split("@")[-1], "schema": schema, "steps": []}

    async def step(name: str) -> None:
        entry = {"step": name, **await timed_cycles(backend, args.cycles), **await sizes(backend)}
        report["steps"].append(entry)
        print(json.dumps(entry), flush=True)

    try:
        await enqueue(backend, args.queued)
        await step(f"{args.queued} queued, no history")

        started = time.perf_counter()
        s = f'"{schema}"'
        async with backend._pool.acquire() as conn:  # type: ignore[union-attr]  # noqa: SLF001
            for offset in range(0, args.finished, 250_000):
                n = min(250_000, args.finished - offset)
                await conn.execute(
                    f"""INSERT INTO {s}.finished_jobs (id, queue, state, priority, attempt, max_attempts, token,
                            enqueued_at, run_at, started_at, finished_at, body, result)
                        SELECT 'old-' || ({offset} + i), 'bloat', 3, 0, 1, 3, 1,
                               now() - interval '1 day', now() - interval '1 day', now() - interval '1 day',
                               now() - interval '1 day' + i * interval '1 ms', decode(md5(i::text) || md5(i::text), 'hex'), '\\x01'
                        FROM generate_series(1, {n}) AS i"""
                )
            await conn.execute(f"VACUUM ANALYZE {s}.finished_jobs")
        report["insert_finished_s"] = round(time.perf_counter() - started, 1)
        await step(f"+{args.finished} finished jobs")

        async def churn() -> float:
            started = time.perf_counter()
            for _ in range(args.churn // 1000):
                await enqueue(backend, 1000)
                for _ in range(10):
                    got = await backend.claim(["bloat"], 100, 30.0)
                    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, None) for c in got])
            return round(time.perf_counter() - started, 1)

        backend.vacuum = False  # first without the backend's own VACUUM, to show what it is for
        report["churn_without_vacuum_s"] = await churn()
        await step(f"+{args.churn} jobs through the hot table, no VACUUM")
        async with backend._pool.acquire() as conn:  # type: ignore[union-attr]  # noqa: SLF001
            started = time.perf_counter()
            await conn.execute(f"VACUUM {s}.jobs")
            report["vacuum_hot_table_s"] = round(time.perf_counter() - started, 3)
        await step("right after VACUUM of the hot table")
        backend.vacuum = True
        report["churn_with_vacuum_s"] = await churn()
        await step(f"+{args.churn} more, the backend vacuuming as it goes")
        report["claim_plan"] = await claim_plan(backend)
        print(report["claim_plan"], flush=True)
    finally:
        if not args.keep:
            await backend._fetchval(f'DROP SCHEMA "{schema}" CASCADE')  # noqa: SLF001
        await backend.close()
    return report


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres_bloat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=20_000, help="jobs waiting in the queue during the timings")
    parser.add_argument("--finished", type=int, default=1_000_000, help="finished jobs to add")
    parser.add_argument("--churn", type=int, default=200_000, help="jobs to push through the hot table")
    parser.add_argument("--cycles", type=int, default=200, help="claim+ack cycles timed per step")
    parser.add_argument("--keep", action="store_true", help="keep the schema for inspection")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON at the end")
    args = parser.parse_args(argv)
    report = asyncio.run(main(args))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
