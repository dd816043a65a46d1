"""``python -m benchmarks.pg_statements``: what a PostgreSQL drain costs the server, per job and per statement.

``benchmarks.cpu_split`` says how much CPU the server spends per job; this says where: it
runs the same enqueue and drain (one burst worker, no-op jobs) and reports for each stage
the CPU split, the WAL the stage wrote per job (``pg_current_wal_lsn()`` before and after:
less WAL is less server work, and it hardly moves with the machine's load; it includes the
full-page images written after a checkpoint, so compare runs with ``pg_waldump --stats=record``
over the printed range, whose record sizes leave them out), and, when the
server loads ``pg_stat_statements``, every statement's execution time per job. Set
``pg_stat_statements.track = all`` on the server to see the statements inside the SQL
functions (claim's UPDATE, ack's DELETE ...). It resets ``pg_stat_statements`` (superuser or
``pg_read_all_stats``): point it at a private cluster, never at a shared one.

Examples::

    FASTJOBS_DATABASE_URL=postgresql://postgres@127.0.0.1:5434/test python -m benchmarks.pg_statements
    python -m benchmarks.pg_statements --jobs 100000 --top 12 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from . import URLS, loop_runner
from .cpu_split import measure, noop_workload


async def _server(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _statements(url: str) -> list[dict[str, Any]]:
    try:
        rows = await _server(url, """
            SELECT calls, rows, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') AS query
            FROM pg_stat_statements ORDER BY total_exec_time DESC""")
    except Exception:  # noqa: BLE001 - the extension is optional
        return []
    return [dict(r) for r in rows]


async def _reset(url: str) -> None:
    with contextlib.suppress(Exception):  # the extension is optional
        await _server(url, "SELECT pg_stat_statements_reset()")


async def _lsn(url: str) -> tuple[int, str]:
    row = (await _server(url, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS b, pg_current_wal_lsn()::text AS lsn"))[0]
    return int(row["b"]), row["lsn"]


async def run(jobs: int, concurrency: int, top: int, **options: Any) -> list[dict[str, Any]]:
    from tests.backends import wipe_namespace

    url = URLS["postgres"]()
    app, works = noop_workload(url, "pgstmt", jobs, concurrency, **options)

    stages = []
    try:
        await app.backend()
        for stage in ("enqueue", "drain"):
            work = works[stage]
            await _reset(url)
            wal, start = await _lsn(url)
            split = await measure("postgres", stage, jobs, app, work)
            end_bytes, end = await _lsn(url)
            wal = end_bytes - wal
            statements = [
                {"us_per_job": round(s["total_exec_time"] * 1000 / jobs, 2), "calls": s["calls"], "rows": s["rows"],
                 "query": s["query"][:160]}
                for s in (await _statements(url))[:top]
            ]
            stages.append({"stage": stage, "jobs_per_s": split.jobs_per_s, "worker_us": split.worker_us,
                           "server_us": split.server_us, "server_busy": split.server_busy,
                           "wal_bytes_per_job": round(wal / jobs, 1),
                           "wal_range": [start, end], "statements": statements})
    finally:
        await app.close()
        await wipe_namespace(app.url, app.options.prefix)
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_statements", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--top", type=int, default=10, help="statements listed per stage")
    parser.add_argument("--no-history", action="store_true", help="App(history=False, events=False)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    options = {"history": False, "events": False} if args.no_history else {}
    stages = loop_runner()(run(args.jobs, args.concurrency, args.top, **options))
    if args.json:
        json.dump(stages, sys.stdout, indent=2)
        print()
        return 0
    for s in stages:
        print(f"{s['stage']}: {s['jobs_per_s']:,.0f} jobs/s, worker {s['worker_us']} us/job, server {s['server_us']} "
              f"us/job ({s['server_busy']:.0%} busy), WAL {s['wal_bytes_per_job']} bytes/job "
              f"({s['wal_range'][0]}..{s['wal_range'][1]}: pg_waldump --stats=record on the server)")
        for st in s["statements"]:
            print(f"  {st['us_per_job']:7.2f} us/job {st['calls']:7d} calls {st['rows']:8d} rows  {st['query']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
