"""``fastjobs pause / resume / stats / check`` through real processes: the live ``stats --watch``
table refreshes, ``check`` exits 0 healthy, 1 unhealthy and 2 on bad usage, and the read-only
commands leave an empty PostgreSQL database as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import asyncpg
import pytest

from tests.backends import wipe_namespace
from tests.process.cli_ops import APP, ROOT, Space, any_space, redis_space  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def test_pause_and_resume(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    done = await asyncio.to_thread(space.cli, "pause", "emails")
    assert done.stdout.strip() == "queue emails paused; paused queues: emails"
    assert await space.app.paused() == ["emails"]
    assert await asyncio.to_thread(space.json, "resume", "emails") == {
        "queue": "emails", "paused": False, "paused_queues": []}
    assert await space.app.paused() == []


async def test_stats_counts_rates_and_workers(any_space: Space) -> None:  # noqa: F811
    space = any_space
    await space.dead_and_succeeded(dead=2, succeeded=3)
    await space.echo.options(queue="later", delay=3600).enqueue("z")
    await space.app.pause("later")
    snap = await asyncio.to_thread(space.json, "stats")
    assert snap["queues"]["default"]["dead"] == 2 and snap["queues"]["default"]["succeeded"] == 3
    assert snap["queues"]["later"]["scheduled"] == 1 and snap["paused"] == ["later"]
    assert snap["jobs_per_second"]["default"] > 0  # the burst worker's runs, from the history
    assert snap["workers"] == {"alive": 0, "gone": 0}
    lines = (await asyncio.to_thread(space.cli, "stats")).stdout.splitlines()
    assert lines[0].startswith("fastjobs stats: tests.process.cli_ops:app")
    assert lines[1].split() == ["queue", "scheduled", "queued", "active", "succeeded", "retry", "dead", "cancelled",
                                "waiting", "jobs/s"]
    row = next(line.split() for line in lines if line.startswith("default "))
    assert row[1:9] == ["0", "0", "0", "3", "0", "2", "0", "0"] and float(row[9]) > 0
    assert any(line.startswith("later*") for line in lines)
    assert lines[-2:] == ["workers: 0 alive, 0 gone", "* paused: later"]


async def test_stats_watch_refreshes(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    await space.echo.enqueue("a")
    done = await asyncio.to_thread(space.cli, "stats", "--watch", "--interval", "0.1", "--iterations", "3")
    assert done.stdout.count("fastjobs stats: ") == 3
    frames = await asyncio.to_thread(space.cli, "stats", "--watch", "--json", "--interval", "0.1", "--iterations", "2")
    docs = [json.loads(line) for line in frames.stdout.splitlines()]
    assert len(docs) == 2 and all(d["queues"]["default"]["queued"] == 1 for d in docs)
    assert docs[0]["now"] < docs[1]["now"]
    # Until interrupted, as a person runs it: Ctrl-C ends it cleanly.
    proc = subprocess.Popen([sys.executable, "-m", "fastjobs", "stats", APP, "--watch", "--interval", "0.1"],
                            cwd=ROOT, env=space.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    while seen < 2:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, proc.stderr.read() if proc.stderr else ""
        seen += line.startswith("fastjobs stats: ")
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err


async def test_stats_counts_live_workers(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    worker = subprocess.Popen([sys.executable, "-m", "fastjobs", "worker", APP, "--queues", "idle"], cwd=ROOT,
                              env=space.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until it registered (it beats from its start)
            snap = await asyncio.to_thread(space.json, "stats")
            if snap["workers"]["alive"]:
                break
            await asyncio.sleep(0.2)
        assert snap["workers"] == {"alive": 1, "gone": 0}
        text = await asyncio.to_thread(space.cli, "stats")
        assert "workers: 1 alive, 0 gone" in text.stdout.splitlines()
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)


async def test_check_exit_status(any_space: Space) -> None:  # noqa: F811
    space = any_space
    healthy = await asyncio.to_thread(space.cli, "check")
    assert healthy.stdout.startswith("ok") and healthy.stderr == ""
    await space.echo.enqueue("waits")
    # The job was enqueued before this process started, so it has waited longer than 1 ms.
    stale = await asyncio.to_thread(space.cli, "check", "--queue", "default", "--max-age", "0.001", ok=1)
    assert stale.stdout == "" and stale.stderr.startswith("fastjobs: unhealthy: ")
    assert len(stale.stderr.strip().splitlines()) == 1
    fresh = await asyncio.to_thread(space.json, "check", "--queue", "default", "--max-age", "3600")
    assert fresh["ok"] is True and fresh["oldest_age"] > 0
    empty = await asyncio.to_thread(space.cli, "check", "--queue", "empty", "--max-age", "1")
    assert empty.stdout.startswith("ok")
    down = await asyncio.to_thread(space.cli, "check", "--url", "redis://127.0.0.1:1/0", "--timeout", "1", ok=1)
    assert down.stderr.startswith("fastjobs: unhealthy: ")
    assert "--queue and --max-age go together" in await asyncio.to_thread(space.usage_error, "check", "--queue", "x")
    assert "--max-age must be more than 0" in await asyncio.to_thread(
        space.usage_error, "check", "--queue", "x", "--max-age", "0")


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
async def test_check_answers_within_its_timeout_when_the_server_accepts_but_never_replies(
    redis_space: Space, scheme: str  # noqa: F811
) -> None:
    """A probe's own --timeout bounds connecting too: a server that accepts connections and then
    hangs makes check unhealthy after about --timeout, not after the socket timeout (15 s)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        url = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/test"
        started = time.monotonic()
        hung = await asyncio.to_thread(redis_space.cli, "check", "--url", url, "--timeout", "1", ok=1)
        took = time.monotonic() - started
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert hung.stderr.startswith("fastjobs: unhealthy: ")
    assert took < 6, f"check --timeout 1 answered after {took:.1f} s"  # the process's start-up included


async def test_read_only_commands_on_an_empty_database_create_nothing(postgres_url: str) -> None:
    space = Space(postgres_url)
    try:
        for args in (["jobs"], ["job", "0" * 32], ["stats"], ["retry", "--state", "dead"], ["cancel", "x" * 32],
                     ["pause", "q"]):
            line = await asyncio.to_thread(space.usage_error, *args)
            assert line == f"fastjobs: error: no fastjobs schema here: run `fastjobs migrate` (schema " \
                           f"{space.prefix!r} does not exist)", args
        unhealthy = await asyncio.to_thread(space.cli, "check", ok=1)
        assert "no fastjobs schema here" in unhealthy.stderr
        conn = await asyncpg.connect(postgres_url)
        try:
            assert await conn.fetchval("SELECT to_regnamespace($1)", space.prefix) is None
        finally:
            await conn.close()
    finally:
        await wipe_namespace(postgres_url, space.prefix)
