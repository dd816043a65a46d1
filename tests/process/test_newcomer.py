"""What a new user runs into first: a script's tasks found by a separate worker, clear
import errors, every state in `fastjobs info`, a typed timeout from `job.result()`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import asyncio, os
    import fastjobs

    app = fastjobs.App(os.environ["FASTJOBS_URL"], prefix=os.environ["FASTJOBS_TEST_PREFIX"])

    @app.task()
    async def send_email(to: str) -> str:
        return f"sent to {to}"

    async def main() -> None:
        job = await send_email.enqueue("a@b.c")
        print(job.id)
        await app.close()

    if __name__ == "__main__":
        asyncio.run(main())
''')


def fastjobs_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastjobs", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


async def test_a_script_run_directly_enqueues_jobs_a_separate_worker_runs(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(SCRIPT)
    prefix = unique_prefix()
    env = dict(os.environ, FASTJOBS_URL=redis_url, FASTJOBS_TEST_PREFIX=prefix)
    env.pop("PYTHONPATH", None)
    try:
        enqueued = subprocess.run([sys.executable, "tasks.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60)
        assert enqueued.returncode == 0, enqueued.stderr
        job_id = enqueued.stdout.strip()
        worker = fastjobs_cli("worker", "tasks:app", "--burst", cwd=tmp_path, env=env)
        assert worker.returncode == 0, worker.stderr
        app = fastjobs.App(redis_url, prefix=prefix)
        info = await app.get_job(job_id)
        await app.close()
        assert info is not None and (info.task, info.state, info.result) == ("tasks.send_email", "succeeded", "sent to a@b.c")
    finally:
        await wipe_namespace(redis_url, prefix)


def test_a_file_name_in_place_of_a_module_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(SCRIPT)
    done = fastjobs_cli("worker", "tasks.py:app", cwd=tmp_path, env=dict(os.environ))
    assert done.returncode == 2
    assert done.stderr.strip() == "fastjobs: error: 'tasks.py' is a file name; give the module name: tasks:app"


def test_a_module_that_fails_to_import_shows_why(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import fastjobs\nimport no_such_dependency_xyz\napp = fastjobs.App()\n")
    env = dict(os.environ)
    done = fastjobs_cli("info", "broken:app", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert ("fastjobs: error: cannot import module 'broken': ModuleNotFoundError: No module named "
            "'no_such_dependency_xyz' (run with --log-level DEBUG for the traceback)") == done.stderr.strip()
    debug = fastjobs_cli("info", "broken:app", "--log-level", "DEBUG", cwd=tmp_path, env=env)
    assert "Traceback" in debug.stderr and 'broken.py", line 2' in debug.stderr


async def test_info_shows_every_state_within_100_columns(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(SCRIPT)
    prefix = unique_prefix()
    env = dict(os.environ, FASTJOBS_URL=redis_url, FASTJOBS_TEST_PREFIX=prefix)
    app = fastjobs.App(redis_url, prefix=prefix)
    step = app.task(name="tasks.send_email")(lambda to: to)
    try:
        parent = await step.enqueue("a")
        await step.options(depends_on=[parent]).enqueue("b")  # waits for its parent
        done = fastjobs_cli("info", "tasks:app", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        header = next(line for line in lines if line.startswith("queue"))
        assert header.split() == ["queue", *fastjobs._core.STATE_NAMES]
        row = next(line for line in lines if line.startswith("default"))
        counts = dict(zip(fastjobs._core.STATE_NAMES, map(int, row.split()[1:])))
        assert (counts["queued"], counts["waiting"]) == (1, 1)
        assert max(map(len, lines)) <= 100
    finally:
        await app.close()
        await wipe_namespace(redis_url, prefix)


async def test_result_timeout_is_typed_and_says_the_last_error() -> None:
    app = fastjobs.App("memory://")

    @app.task(max_attempts=3, backoff=fastjobs.Fixed(60))
    async def flaky() -> None:
        raise ValueError("boom")

    job = await flaky.enqueue()
    with pytest.raises(fastjobs.ResultTimeoutError, match=r"within 0.05 s \(state: queued\)$"):
        await job.result(timeout=0.05)
    await asyncio.wait_for(app.worker(burst=True, handle_signals=False).run(), 10)
    with pytest.raises(TimeoutError, match=r"state: retry_pending; last error: attempt 1: ValueError: boom"):
        await job.result(timeout=0.05)


async def test_read_only_commands_on_an_empty_database_create_nothing(postgres_url: str, tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(SCRIPT)
    prefix = unique_prefix()
    env = dict(os.environ, FASTJOBS_URL=postgres_url, FASTJOBS_TEST_PREFIX=prefix)
    try:
        for command in ("info", "workers"):
            done = await asyncio.to_thread(fastjobs_cli, command, "tasks:app", cwd=tmp_path, env=env)
            assert done.returncode == 2, done
            assert done.stderr.strip() == (
                f"fastjobs: error: no fastjobs schema here: run `fastjobs migrate` (schema {prefix!r} does not exist)"
            )
        import asyncpg

        conn = await asyncpg.connect(postgres_url)
        try:
            assert await conn.fetchval("SELECT to_regnamespace($1)", prefix) is None
        finally:
            await conn.close()
        migrated = await asyncio.to_thread(fastjobs_cli, "migrate", "tasks:app", cwd=tmp_path, env=env)
        assert migrated.returncode == 0, migrated.stderr
        done = await asyncio.to_thread(fastjobs_cli, "info", "tasks:app", cwd=tmp_path, env=env)
        assert done.returncode == 0 and "default" not in done.stdout, done  # an empty schema: no queues yet
    finally:
        await wipe_namespace(postgres_url, prefix)
