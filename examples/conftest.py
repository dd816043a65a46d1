"""What the examples' tests share: one fresh jobs namespace for the run, removed at its end.

Every example reads ``FASTJOBS_PREFIX`` (the Redis key prefix, or the PostgreSQL schema, of
its jobs); it is set here, before any example is imported, to a name no other run uses, so
the tests can share the Redis at 127.0.0.1:6379 and the PostgreSQL at 127.0.0.1:5432 (the
examples' defaults; ``FASTJOBS_URL`` / ``DATABASE_URL`` name others) with anything else.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

PREFIX = os.environ["FASTJOBS_PREFIX"] = "examples_" + uuid.uuid4().hex[:12]


async def _wipe(url: str) -> None:
    """Delete the run's keys (Redis) or schema (PostgreSQL) on the server at ``url``."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis.asyncio as aioredis

        client = aioredis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()
    elif url.startswith(("postgresql://", "postgres://")):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{PREFIX}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture(scope="session", autouse=True)
def jobs_namespace() -> Iterator[str]:
    """The run's prefix; afterwards its keys and schemas are deleted."""
    yield PREFIX
    for url in {os.environ.get("FASTJOBS_URL", "redis://127.0.0.1:6379/0"),  # the web examples' jobs
                os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")}:  # postgres_transactional's
        asyncio.run(_wipe(url))
