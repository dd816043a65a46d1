"""The compared libraries' own space on the servers, made empty before each run and emptied after.

Redis: one database number (``--redis-db``, default 15), which must be empty when the
comparison starts (it is never flushed if it holds someone else's keys), FLUSHDB'd on that
database only. PostgreSQL: a database of its own, ``fastjobs_compare``, created and dropped;
other tests use database 0 and ``test`` meanwhile and are not touched.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from .. import URLS

PG_DATABASE = "fastjobs_compare"


def redis_url(db: int) -> str:
    parts = urlsplit(URLS["redis"]())
    return urlunsplit(parts._replace(path=f"/{db}"))


def postgres_url() -> str:
    parts = urlsplit(URLS["postgres"]())
    return urlunsplit(parts._replace(path=f"/{PG_DATABASE}"))


def redis_keys(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()  # this database only: FLUSHALL would take the others' too
    finally:
        client.close()


async def _admin(sql: str) -> None:
    import asyncpg

    # Connected to the configured database, never to the one dropped or created.
    conn = await asyncpg.connect(URLS["postgres"]())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def recreate_postgres() -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
    asyncio.run(_admin(f'CREATE DATABASE "{PG_DATABASE}"'))


def drop_postgres() -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))


def versions(redis_db: int) -> dict[str, str]:
    """The servers' versions, for the table's title and the JSON."""
    import asyncpg
    import redis

    found = {}
    try:
        client = redis.Redis.from_url(redis_url(redis_db))
        found["redis"] = str(client.info("server")["redis_version"])
        client.close()
    except Exception as exc:  # noqa: BLE001 - a server that is down is reported, not fatal here
        found["redis"] = f"unreachable ({exc.__class__.__name__})"

    async def pg() -> str:
        conn = await asyncpg.connect(URLS["postgres"]())
        try:
            return str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    try:
        found["postgres"] = asyncio.run(pg())
    except Exception as exc:  # noqa: BLE001
        found["postgres"] = f"unreachable ({exc.__class__.__name__})"
    return found
