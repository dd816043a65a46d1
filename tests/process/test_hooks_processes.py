"""Hooks and log lines in real ``fastjobs worker`` processes, on Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import fastjobs
from tests.process import hooks_app
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["redis", "postgres"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str, fastjobs.App]]:
    """A fresh namespace on the backend, and an App on it to enqueue hooks_app's tasks with."""
    url = str(request.getfixturevalue(f"{request.param}_url"))
    prefix = unique_prefix()
    app = fastjobs.App(url, prefix=prefix)
    yield url, prefix, app
    await app.close()
    await wipe_namespace(url, prefix)


def worker(url: str, prefix: str, log: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), HOOKS_PREFIX=prefix, HOOKS_LOG=str(log), **env)
    return subprocess.run(
        [sys.executable, "-m", "fastjobs", "worker", "tests.process.hooks_app:app", "--url", url, "--burst", *extra],
        capture_output=True, text=True, env=environ, cwd=ROOT, timeout=120,
    )


async def test_hooks_run_in_a_worker_process_and_json_logs_carry_the_job(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    greets = await app.enqueue_many([hooks_app.greet.call(str(i)) for i in range(5)])
    failing = (await app.enqueue_many([hooks_app.fail.call()]))[0]
    log = tmp_path / "hooks.log"
    done = worker(url, prefix, log, "--log-format", "json", "--log-jobs")
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("start ") and lines[-1].startswith("stop ")
    for h in greets:
        assert f"before {h.id}" in lines and f"after {h.id} succeeded" in lines
        assert (await app.get_job(h.id)).result.startswith("hi ")  # type: ignore[union-attr]
    assert f"after {failing.id} dead" in lines and f"dead {failing.id} ValueError" in lines
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records and len(records) == len(done.stderr.splitlines()), done.stderr  # every line is JSON
    failure = next(r for r in records if r.get("job_id") == failing.id and r["level"] == "ERROR")
    assert failure["task"] == "fail" and failure["attempt"] == 1 and failure["queue"] == "default"
    assert failure["worker_id"] and "no luck" in failure["message"]
    outcomes = [r for r in records if r.get("logger") == "fastjobs.jobs"]
    assert sorted(r["job_id"] for r in outcomes) == sorted([*(h.id for h in greets), failing.id])
    assert all({"time", "level", "message", "task", "queue", "attempt", "worker_id"} <= r.keys() for r in outcomes)


async def test_without_log_jobs_only_failures_are_logged_per_job(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    await app.enqueue_many([hooks_app.greet.call(str(i)) for i in range(5)] + [hooks_app.fail.call()])
    done = worker(url, prefix, tmp_path / "hooks.log")
    assert done.returncode == 0, done.stderr
    assert "fastjobs.jobs" not in done.stderr  # no line per success
    assert done.stderr.count("dead-lettered") == 1


async def test_a_failing_start_hook_exits_3_with_the_reason_and_claims_nothing(
    target: tuple[str, str, fastjobs.App], tmp_path: Path
) -> None:
    url, prefix, app = target
    job = (await app.enqueue_many([hooks_app.greet.call("x")]))[0]
    done = worker(url, prefix, tmp_path / "hooks.log", HOOKS_BREAK="1")
    assert done.returncode == 3, done.stderr
    assert "on_worker_start hook start raised ConnectionRefusedError: the database said no" in done.stderr
    assert "Traceback" in done.stderr  # the hook's own traceback, to fix it
    assert (await job.info()).state == "queued"  # type: ignore[union-attr]
