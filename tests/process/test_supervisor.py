"""``fastjobs worker --processes P``, ``enqueue`` and ``info`` as real processes on Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.process.shared_app:app"

pytestmark = pytest.mark.slow


@pytest.fixture
def env(redis_url: str) -> Iterator[dict[str, str]]:
    prefix = unique_prefix()
    yield dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=redis_url, FASTJOBS_TEST_PREFIX=prefix)
    asyncio.run(wipe_namespace(redis_url, prefix))


def fastjobs_cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastjobs", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def collect_stderr(process: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """Read a process's stderr lines into a list from a thread (so the pipe never fills)."""
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    return lines, reader


@pytest.mark.skipif(sys.platform != "linux", reason="children die with the supervisor through prctl on Linux")
def test_a_supervisor_killed_with_sigkill_takes_its_children_with_it(env: dict[str, str]) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", TARGET, "--processes", "2"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(children(supervisor.pid)) == 2)
        kids = children(supervisor.pid)
    finally:
        supervisor.kill()
        supervisor.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is dead; ps says so (state Z), os.kill does not.
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        return bool(state) and not state.startswith("Z")

    wait_for(lambda: not any(alive(pid) for pid in kids), timeout=15)


def test_enqueue_then_a_supervised_pool_runs_it_restarts_a_killed_child_and_stops_on_sigterm(env: dict[str, str]) -> None:
    done = fastjobs_cmd(env, "enqueue", TARGET, "echo", "--args", '["hi"]')
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert len(job_id) == 32

    supervisor = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", TARGET, "--processes", "2", "--grace", "5"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    log, reader = collect_stderr(supervisor)

    def started() -> int:
        return sum("worker started" in line for line in list(log))

    try:
        wait_for(lambda: len(children(supervisor.pid)) == 2)
        first = children(supervisor.pid)

        app = fastjobs.App(env["FASTJOBS_TEST_URL"], prefix=env["FASTJOBS_TEST_PREFIX"])

        async def result() -> object:
            try:
                return await fastjobs.JobHandle(app, job_id).result(timeout=20)
            finally:
                await app.close()

        assert asyncio.run(result()) == "hi"
        # One child ran the job; the other may still be importing. Kill only once both
        # have started, or the count below waits for a start line that never comes.
        wait_for(lambda: started() == 2)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(supervisor.pid)) == 2 and victim not in children(supervisor.pid))
        assert children(supervisor.pid) != first
        wait_for(lambda: started() == 3)  # the replacement is up, signal handlers installed

        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=30)
        reader.join(10)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        supervisor.stderr.close()
    wait_for(lambda: not children(supervisor.pid), timeout=10)
    err = "".join(log)
    assert supervisor.returncode == 0, err
    assert "restarting" in err
    assert not children(supervisor.pid)
    assert err.count("worker stopped") == 2  # both children shut down gracefully

    info = fastjobs_cmd(env, "info", TARGET, "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["queues"]["default"]["succeeded"] == 1
    assert report["tasks"] == ["echo"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "2", "--concurrency", "0"], "concurrency must be a positive int"),
        (["--processes", "0"], "--processes must be 1 or more"),
    ],
)
def test_bad_worker_options_fail_once_before_any_fork(env: dict[str, str], args: list[str], message: str) -> None:
    done = fastjobs_cmd(env, "worker", TARGET, *args)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_ctrl_c_to_the_process_group_drains_gracefully(env: dict[str, str]) -> None:
    """A terminal's Ctrl-C signals the whole group: each child must see SIGINT once (graceful)."""
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", TARGET, "--processes", "2", "--grace", "5"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    log, reader = collect_stderr(supervisor)
    try:
        wait_for(lambda: sum("worker started" in line for line in list(log)) == 2)
        os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal does
        supervisor.wait(timeout=30)
        reader.join(10)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        supervisor.stderr.close()
    err = "".join(log)
    assert "second SIGINT" not in err, err
    assert err.count("worker stopped") == 2, err
