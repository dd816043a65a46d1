"""``fastjobs retry / cancel / delete / purge / clear`` through real processes: by id, by filter,
edited retries, refusals that change nothing, and the confirmation a bulk action over 1,000
jobs needs (refused without a terminal unless ``--yes``)."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys

import pytest

from tests.process.cli_ops import APP, ROOT, Space, any_space, redis_space  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def states(space: Space, ids: list[str]) -> list[str | None]:
    infos = [await space.app.get_job(job_id) for job_id in ids]
    return [None if info is None else info.state for info in infos]


async def test_retry_by_ids_and_by_filter(any_space: Space) -> None:  # noqa: F811
    space = any_space
    dead, succeeded = await space.dead_and_succeeded(dead=4, succeeded=1)
    done = await asyncio.to_thread(space.cli, "retry", dead[0], dead[1])
    assert done.stdout.strip() == "retried 2 of 2 jobs"
    assert await states(space, dead) == ["queued", "queued", "dead", "dead"]
    # A job that cannot be retried among the ids: the others are, and the status says not all were.
    partial = await asyncio.to_thread(space.cli, "retry", dead[2], succeeded[0], ok=1)
    assert partial.stdout.strip() == "retried 1 of 2 jobs"
    assert "1 of the jobs named were not retried" in partial.stderr
    by_filter = await asyncio.to_thread(space.json, "retry", "--state", "dead", "--task", "boom")
    assert by_filter == {"action": "retry", "retried": 1}
    assert await states(space, dead) == ["queued"] * 4


async def test_retry_one_job_edited(any_space: Space) -> None:  # noqa: F811
    space = any_space
    dead, _ = await space.dead_and_succeeded(dead=1, succeeded=0)
    done = await asyncio.to_thread(space.cli, "retry", dead[0], "--args", '["fixed"]', "--to-queue", "slow",
                                   "--priority", "5", "--max-attempts", "3")
    assert done.stdout.strip() == "retried 1 of 1 job"
    info = await space.app.get_job(dead[0])
    assert info is not None
    assert (info.state, info.queue, info.args, info.priority, info.max_attempts) == ("queued", "slow", ("fixed",), 5, 3)


async def test_refusals_say_why_and_change_nothing(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    dead, succeeded = await space.dead_and_succeeded(dead=2, succeeded=1)
    queued = (await space.echo.enqueue("waiting")).id
    for args, message in [
        (["retry", queued], "queued"),                                # a state retry does not apply to
        (["retry", "f" * 32], "f" * 32),                              # an unknown id
        (["retry", dead[0], dead[1], "--args", "[1]"], "exactly one job id"),
        (["retry", dead[0], "--args", "{}"], "--args must be a JSON array"),
        (["retry", dead[0], "--state", "dead"], "not both"),
        (["retry"], "give job ids, or filter options"),
        (["retry", "--state", "nope"], "nope"),
        (["cancel", succeeded[0]], "succeeded"),
        (["cancel", "f" * 32], "no job with id"),
        (["delete", "f" * 32], "f" * 32),
        (["purge", "--state", "queued"], "invalid choice: 'queued'"),
        (["clear", "bad queue"], "queue"),
    ]:
        line = await asyncio.to_thread(space.usage_error, *args)
        assert message in line, (args, line)
    assert await states(space, [*dead, *succeeded, queued]) == ["dead", "dead", "succeeded", "queued"]


async def test_cancel_delete_purge_clear(any_space: Space) -> None:  # noqa: F811
    space = any_space
    dead, succeeded = await space.dead_and_succeeded(dead=2, succeeded=2)
    queued = list((await space.app.enqueue_many(space.echo.options(queue="q1").call(str(i)) for i in range(3))).ids)
    later = list((await space.app.enqueue_many(
        space.echo.options(queue="q2", delay=3600).call(str(i)) for i in range(2))).ids)

    assert (await asyncio.to_thread(space.cli, "cancel", queued[0])).stdout.strip() == "cancelled 1 of 1 job"
    assert (await asyncio.to_thread(space.json, "cancel", "--queue", "q1")) == {"action": "cancel", "cancelled": 2}
    assert await states(space, queued) == ["cancelled"] * 3

    assert (await asyncio.to_thread(space.cli, "delete", queued[0], queued[1])).stdout.strip() == "deleted 2 of 2 jobs"
    assert (await asyncio.to_thread(space.cli, "delete", "--tag", "good")).stdout.strip() == \
        "deleted 2 jobs matching the filter"
    assert await states(space, [*queued, *succeeded]) == [None, None, "cancelled", None, None]

    purged = await asyncio.to_thread(space.cli, "purge", "--state", "dead")
    assert purged.stdout.strip() == "purged 2 jobs (dead, every queue)"
    assert await states(space, dead) == [None, None]

    cleared = await asyncio.to_thread(space.json, "clear", "q2")
    assert cleared == {"action": "clear", "cleared": 2}
    assert await states(space, later) == [None, None]


async def test_a_bulk_action_over_1000_jobs_needs_yes(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    await space.app.enqueue_many(space.echo.options(queue="bulk", tags=["t"]).call(str(i)) for i in range(1001))
    for args in (["cancel", "--queue", "bulk"], ["delete", "--tag", "t"], ["clear", "bulk"]):
        line = await asyncio.to_thread(space.usage_error, *args)
        assert "would act on 1,001 jobs (more than 1,000): pass --yes" in line, line
    assert (await space.app.stats())["bulk"]["queued"] == 1001  # nothing changed
    # On a terminal it asks: "n" leaves everything as it was (exit 1), "y" goes ahead.
    prompt, declined = await asyncio.to_thread(answer_on_a_terminal, space, "n", "cancel", "--queue", "bulk")
    assert prompt == "cancel 1,001 jobs? [y/N] " and declined.returncode == 1, declined
    assert declined.stderr.strip() == "fastjobs: cancel: nothing done"
    assert (await space.app.stats())["bulk"]["queued"] == 1001
    prompt, accepted = await asyncio.to_thread(answer_on_a_terminal, space, "y", "delete", "--tag", "t")
    assert accepted.returncode == 0 and accepted.stdout.strip() == "deleted 1,001 jobs matching the filter"
    await space.app.enqueue_many(space.echo.options(queue="bulk").call(str(i)) for i in range(1001))
    done = await asyncio.to_thread(space.cli, "cancel", "--queue", "bulk", "--yes")
    assert done.stdout.strip() == "cancelled 1,001 jobs matching the filter"
    # 1,001 dead jobs: retry refuses them without --yes too, and takes them all with it.
    await space.app.enqueue_many(space.boom.options(queue="bulk").call(str(i)) for i in range(1001))
    await space.app.worker(["bulk"], burst=True, handle_signals=False, concurrency=500).run()
    line = await asyncio.to_thread(space.usage_error, "retry", "--state", "dead", "--queue", "bulk")
    assert "retry would act on 1,001 jobs" in line
    assert (await asyncio.to_thread(space.json, "retry", "--queue", "bulk", "--yes"))["retried"] == 1001
    purge = await asyncio.to_thread(space.usage_error, "purge", "--state", "cancelled")
    assert "purge cancelled would act on 1,001 jobs" in purge


def answer_on_a_terminal(space: Space, answer: str, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run a command with a terminal as stdin and stderr; read its question, type ``answer``."""
    command, *rest = args
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastjobs", command, APP, *rest], cwd=ROOT, env=space.env,
                            stdin=terminal, stderr=terminal, stdout=subprocess.PIPE, text=True)
    os.close(terminal)
    prompt = b""
    while not prompt.endswith(b"] "):
        chunk = os.read(controller, 1024)
        assert chunk, prompt
        prompt += chunk
    os.write(controller, answer.encode() + b"\n")
    out, _ = proc.communicate(timeout=60)
    rest_of_stderr = b""
    try:
        while chunk := os.read(controller, 1024):
            rest_of_stderr += chunk
    except OSError:  # the terminal closed with the process
        pass
    os.close(controller)
    # The terminal echoes the answer, and turns newlines into CRLF.
    err = rest_of_stderr.decode().replace("\r\n", "\n").removeprefix(answer + "\n")
    return prompt.decode(), subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
