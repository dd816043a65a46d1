"""The live worker registry seen from outside: real ``fastjobs worker`` processes, listed by
``fastjobs workers``; SIGTERM takes one off the list at once, SIGKILL leaves it listed as gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.postgres.workerapp:app"
LEASE = 1.5
"""The test app's lease: a beat every 0.5 s, listed as gone 1.5 s after the last one."""

pytestmark = pytest.mark.slow


class Namespace:
    """One backend URL and a fresh prefix on it, and the processes run against them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_PREFIX=self.prefix,
                        FASTJOBS_TEST_LEASE=str(LEASE), FASTJOBS_TEST_SLOW="1")
        # The App's own URL is memory://: every command reaches the backend through --url.
        self.env.pop("FASTJOBS_TEST_URL", None)
        self.env.pop("FASTJOBS_URL", None)

    def start_worker(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "fastjobs", "worker", APP, "--grace", "0.5"],
            cwd=ROOT, env={**self.env, "FASTJOBS_TEST_URL": self.url}, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fastjobs", "workers", APP, "--url", self.url, *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)

    def workers(self) -> list[dict[str, Any]]:
        done = self.cli("--json")
        assert done.returncode == 0, done.stderr
        listed: list[dict[str, Any]] = json.loads(done.stdout)["workers"]
        return listed

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            listed = self.workers()
            if check(listed):
                return listed
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)


@pytest.fixture(params=["redis", "postgres"])
async def space(request: pytest.FixtureRequest) -> AsyncIterator[Namespace]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    ns = Namespace(url)
    yield ns
    await wipe_namespace(url, ns.prefix)


async def enqueue_slow(ns: Namespace) -> str:
    app = fastjobs.App(ns.url, prefix=ns.prefix)

    @app.task(name="slow", queue="kill9")
    async def slow(n: int) -> int:
        return n

    try:
        return (await slow.enqueue(1)).id
    finally:
        await app.close()


def stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)


async def test_a_worker_is_listed_with_its_running_job_and_sigterm_removes_it_at_once(space: Namespace) -> None:
    job_id = await enqueue_slow(space)
    proc = space.start_worker()
    try:
        (w,) = await asyncio.to_thread(space.wait_for, lambda ws: bool(ws) and ws[0]["running"] == [job_id])
        assert (w["pid"], w["alive"], w["queues"], w["version"]) == (proc.pid, True, ["kill9"], fastjobs.__version__)
        assert w["id"].split(":")[1] == str(proc.pid)
        text = space.cli()
        assert text.returncode == 0 and "workers: 1 alive, 0 gone" in text.stdout and job_id in text.stdout
        assert max(len(line) for line in text.stdout.splitlines()) <= 100, text.stdout
        stop(proc, signal.SIGTERM)
        assert proc.returncode == 0
        assert space.workers() == []  # at once: no ttl to wait out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_killed_worker_is_listed_as_gone_after_its_ttl(space: Namespace) -> None:
    await enqueue_slow(space)  # the schema exists before the first listing (the CLI never creates it)
    proc = space.start_worker()
    try:
        (w,) = await asyncio.to_thread(space.wait_for, lambda ws: bool(ws))
        assert w["alive"]
        stop(proc, signal.SIGKILL)
        killed = time.monotonic()
        (gone,) = await asyncio.to_thread(space.wait_for, lambda ws: not ws[0]["alive"], 10.0)
        # Not before its ttl (three beat periods): one late beat does not make a worker look dead.
        assert time.monotonic() - killed >= LEASE - 0.6 - 0.5
        assert gone["id"] == w["id"]
        text = space.cli()
        assert "workers: 0 alive, 1 gone" in text.stdout
        assert any(line.startswith(w["id"][:32]) and " gone " in line for line in text.stdout.splitlines()), text.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_help_shows_the_defaults() -> None:
    done = subprocess.run([sys.executable, "-m", "fastjobs", "workers", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0 and "(default: INFO)" in done.stdout and "--url" in done.stdout


def test_memory_is_refused_in_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "fastjobs", "workers", "tests.process.cli_app:app"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "memory://" in done.stderr


async def test_on_postgres_without_a_schema_it_says_so_and_creates_none(postgres_url: str) -> None:
    ns = Namespace(postgres_url)
    done = await asyncio.to_thread(ns.cli)
    assert done.returncode == 2, done
    assert done.stderr.startswith("fastjobs: error: no fastjobs schema here: run `fastjobs migrate`"), done.stderr
    assert done.stderr.count("\n") == 1
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT to_regnamespace($1)", ns.prefix) is None
    finally:
        await conn.close()
