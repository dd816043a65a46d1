"""``fastjobs worker --metrics-port`` as real processes on Redis and PostgreSQL, scraped over HTTP:
the counts equal what ran, a supervisor sums its children and never goes backwards when one is
SIGKILLed, and a missing token or a port in use stops the worker at start (exit status 2)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fastjobs
from tests.backends import unique_prefix, wipe_namespace
from tests.process.metrics_app import build
from tests.process.test_supervisor import children, collect_stderr, wait_for

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.process.metrics_app:app"
TOKEN = "scrape-token-1"

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int, token: str | None = TOKEN) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def try_scrape(port: int) -> Samples | None:
    try:
        return scrape(port)
    except httpx.TransportError:  # not listening yet
        return None


def finished(got: Samples) -> dict[tuple[str, str], float]:
    """(task, outcome) -> count, zeros left out."""
    return {(dict(labels)["task"], dict(labels)["outcome"]): v for (name, labels), v in got.items()
            if name == "fastjobs_jobs_finished_total" and v}


def started(got: Samples) -> dict[str, float]:
    return {dict(labels)["task"]: v for (name, labels), v in got.items() if name == "fastjobs_jobs_started_total"}


def expected_finished(ok: int, flaky: int, slow: int) -> dict[tuple[str, str], float]:
    """``ok`` succeeds; ``flaky`` fails once and is retried, then goes dead; ``slow`` likewise by timing out."""
    counts = {("ok", "succeeded"): ok, ("flaky", "failed"): flaky, ("flaky", "dead"): flaky,
              ("slow", "timed_out"): slow, ("slow", "dead"): slow}
    return {k: float(v) for k, v in counts.items() if v}


class Space:
    """One backend URL, a fresh prefix on it, and the environment the test app reads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=self.prefix,
                        FASTJOBS_METRICS_TOKEN=TOKEN)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "fastjobs", "worker", TARGET, "--grace", "5", *args],
                                env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fastjobs", "worker", TARGET, *args], env=env or self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    async def enqueue(self, ok: int, flaky: int = 0, slow: int = 0) -> list[str]:
        """Enqueue through an App of our own with the test app's tasks; return the job ids."""
        app = build(self.url, self.prefix)
        calls = [app.tasks["ok"].call(i) for i in range(ok)] + [app.tasks["flaky"].call() for _ in range(flaky)]
        calls += [app.tasks["slow"].call() for _ in range(slow)]
        try:
            return [handle.id for handle in await app.enqueue_many(calls)]
        finally:
            await app.close()

    async def settled(self, ids: list[str]) -> None:
        """Wait until every job is finished (succeeded or dead)."""
        app = fastjobs.App(self.url, prefix=self.prefix)
        try:
            for job_id in ids:
                try:
                    await fastjobs.JobHandle(app, job_id).result(timeout=30)
                except fastjobs.JobFailedError:
                    pass
        finally:
            await app.close()


@pytest.fixture(params=["redis", "postgres"])
async def space(request: pytest.FixtureRequest) -> AsyncIterator[Space]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    ns = Space(url)
    yield ns
    await wipe_namespace(url, ns.prefix)


@pytest.fixture
async def redis_space(redis_url: str) -> AsyncIterator[Space]:
    ns = Space(redis_url)
    yield ns
    await wipe_namespace(redis_url, ns.prefix)


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then its stderr; it must exit 0."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return err


async def poll(port: int, check: Callable[[Samples], bool], timeout: float = 20.0) -> Samples:
    deadline = time.monotonic() + timeout
    got: Samples | None = None
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(try_scrape, port)
        if got is not None and check(got):
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"not met in time; last scrape: {got}")


async def test_one_worker_process_serves_counts_equal_to_what_ran(space: Space) -> None:
    port = free_port()
    handles = await space.enqueue(ok=20, flaky=3, slow=2)
    proc = space.start("--metrics-port", str(port), "--concurrency", "10")
    try:
        await space.settled(handles)
        want = expected_finished(20, 3, 2)
        got = await poll(port, lambda s: finished(s) == want)
        assert started(got) == {"ok": 20, "flaky": 6, "slow": 4}  # a retry starts again
        duration_counts = {dict(labels)["task"]: v for (name, labels), v in got.items()
                           if name == "fastjobs_job_duration_seconds_count"}
        assert duration_counts == {"ok": 20, "flaky": 6, "slow": 4}
        assert got[("fastjobs_worker_slots", ())] == 10
        assert got[("fastjobs_jobs_running", ())] == 0
        assert got[("fastjobs_acks_discarded_total", ())] == 0
        assert got[("fastjobs_backend_round_trip_seconds_count", (("operation", "claim"),))] >= 1
        assert got[("fastjobs_backend_round_trip_seconds_count", (("operation", "ack"),))] >= 1
        # The queue counts were first read at the first scrape, after every job had finished.
        depth = {(dict(labels)["queue"], dict(labels)["state"]): v for (name, labels), v in got.items()
                 if name == "fastjobs_queue_jobs" and v}
        assert depth == {("fast", "succeeded"): 20, ("fast", "dead"): 3, ("slow", "dead"): 2}
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", auth=("prometheus", "nope")).status_code == 401
    finally:
        err = stop(proc)
    assert "serving Prometheus metrics at http://127.0.0.1:" in err
    assert try_scrape(port) is None  # the port is closed with the worker


async def test_a_supervisor_serves_its_childrens_sum_and_a_sigkilled_child_takes_nothing_away(
        redis_space: Space) -> None:
    port = free_port()
    proc = redis_space.start("--metrics-port", str(port), "--processes", "2", "--concurrency", "5")
    log, reader = collect_stderr(proc)
    try:
        wait_for(lambda: sum("worker started" in line for line in list(log)) == 2)
        handles = await redis_space.enqueue(ok=60, flaky=4)
        await redis_space.settled(handles)
        want = expected_finished(60, 4, 0)
        before = await poll(port, lambda s: finished(s) == want and s[("fastjobs_worker_slots", ())] == 10)
        assert started(before) == {"ok": 60, "flaky": 8}
        kids = children(proc.pid)
        assert len(kids) == 2
        os.kill(min(kids), signal.SIGKILL)

        # Through the death and the restart, no counter, histogram count or bucket goes down.
        def monotonic(name: str) -> bool:
            return name.endswith(("_total", "_count", "_bucket", "_sum"))

        last = before
        deadline = time.monotonic() + 30
        while True:
            now = await asyncio.to_thread(scrape, port)
            for key, value in last.items():
                if monotonic(key[0]):
                    assert now.get(key, 0) >= value, (key, value, now.get(key))
            last = now
            if len(children(proc.pid)) == 2 and min(kids) not in children(proc.pid) and \
                    now[("fastjobs_worker_slots", ())] == 10:
                break
            assert time.monotonic() < deadline, now
            await asyncio.sleep(0.05)
        assert finished(last) == want  # the killed child's counts are still in the sum

        more = await redis_space.enqueue(ok=30, flaky=1)
        await redis_space.settled(more)
        got = await poll(port, lambda s: finished(s) == expected_finished(90, 5, 0))
        assert started(got) == {"ok": 90, "flaky": 10}
        assert got[("fastjobs_jobs_running", ())] == 0
        # Only the supervisor listens: its children were given a pipe, not the port.
        for kid in children(proc.pid):
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
            assert b"--metrics-fd" in argv and b"--metrics-port" not in argv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(10)
            assert proc.stderr is not None
            proc.stderr.close()
    err = "".join(log)
    assert proc.returncode == 0, err
    assert err.count("serving Prometheus metrics") == 1, err
    assert "restarting" in err


def test_without_a_token_the_worker_refuses_to_start(redis_space: Space) -> None:
    env = {k: v for k, v in redis_space.env.items() if k != "FASTJOBS_METRICS_TOKEN"}
    for args in ([], ["--processes", "2"]):
        done = redis_space.run("--metrics-port", str(free_port()), *args, env=env)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "FASTJOBS_METRICS_TOKEN" in lines[0] and "--metrics-no-auth" in lines[0]
        assert "worker started" not in done.stderr


def test_no_auth_must_be_asked_for_and_then_serves_anyone(redis_space: Space) -> None:
    env = {k: v for k, v in redis_space.env.items() if k != "FASTJOBS_METRICS_TOKEN"}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fastjobs", "worker", TARGET, "--metrics-port", str(port),
                             "--metrics-no-auth"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: try_scrape(port) is not None)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    finally:
        err = stop(proc)
    assert "(no auth)" in err


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_metrics_port_in_use_stops_the_worker_at_start_with_exit_status_2(
        redis_space: Space, processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = redis_space.run("--metrics-port", str(port), "--processes", processes)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert lines == [f"fastjobs: error: the metrics port 127.0.0.1:{port} is in use (another worker's "
                     "--metrics-port?): pick another --metrics-port (or metrics_port=)"], done.stderr
    assert "started worker process" not in done.stderr  # no child was forked
