"""PgQueuer: ``Queries.enqueue`` with lists (one INSERT per 1,000); a worker with batch size 100, run
through ``pgqueuer.run`` (what ``pgq run`` calls: that CLI fails in 1.6.0 under typer 0.29, its
``--log-level`` parser hands a str where an enum is expected, default or not)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import asyncpg
import pgqueuer
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.models import Job

from ..records import append_record
from . import URL_ENV

URL = os.environ.get(URL_ENV, "postgresql://postgres@127.0.0.1:5432/fastjobs_compare")


@contextlib.asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The factory ``pgqueuer.run`` enters (1.6 wants an async context manager)."""
    connection = await asyncpg.connect(URL)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        append_record(int(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await connection.close()


async def setup() -> None:
    connection = await asyncpg.connect(URL)
    await Queries(AsyncpgDriver(connection)).install()
    await connection.close()


async def produce(first: int, count: int) -> tuple[float, float]:
    connection = await asyncpg.connect(URL)
    queries = Queries(AsyncpgDriver(connection))
    started = time.time()
    for start in range(first, first + count, 1000):
        n = min(first + count, start + 1000) - start
        await queries.enqueue(["noop"] * n, [b"%d" % i for i in range(start, start + n)], [0] * n)
    finished = time.time()
    await connection.close()
    return started, finished


if __name__ == "__main__":
    asyncio.run(pgqueuer.run(main, batch_size=100))
