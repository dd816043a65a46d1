"""Batch callbacks run once, and limits hold, with three real worker processes on a shared backend."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_batch_callbacks_once_and_limits_across_three_workers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    prefix = unique_prefix()
    runs = tmp_path / "runs.txt"
    runs.touch()
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=prefix,
               FASTJOBS_TEST_RUNS=str(runs))
    from tests.process import workflow_app

    async def enqueue() -> str:
        app = fastjobs.App(url, prefix=prefix)
        try:
            app.tasks.update(workflow_app.app.tasks)  # the same registered tasks, on this loop's connection
            batch = await app.batch(
                [workflow_app.member.call(n) for n in range(60)],
                then=workflow_app.callback.call("then"), catch=workflow_app.callback.call("catch"),
                finally_=workflow_app.callback.call("finally"),
            )
            await app.enqueue_many([workflow_app.capped.call(n) for n in range(12)])
            await app.enqueue_many([workflow_app.rated.call(n) for n in range(25)])
            return batch.id
        finally:
            await app.close()

    pool = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", "tests.process.workflow_app:app", "--processes", "3",
         "--concurrency", "10", "--grace", "5"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        batch_id = asyncio.run(enqueue())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = runs.read_text().splitlines()
            kinds = [line.split()[0] for line in lines]
            if kinds.count("capped") == 12 and kinds.count("rated") == 25 and "then" in kinds and "finally" in kinds:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a second run of a callback, if there were one, would land meanwhile
        pool.send_signal(signal.SIGTERM)
        _, err = pool.communicate(timeout=30)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    assert pool.returncode == 0, err
    assert err.count("worker started") == 3, err
    lines = runs.read_text().splitlines()
    kinds = [line.split()[0] for line in lines]
    assert (kinds.count("then"), kinds.count("finally"), kinds.count("catch")) == (1, 1, 0), lines

    capped = [tuple(map(float, line.split()[1:])) for line in lines if line.startswith("capped")]
    assert len(capped) == 12
    assert max_overlap(capped) == 2  # never more than the cap, and the cap was reached

    rated = sorted(float(line.split()[1]) for line in lines if line.startswith("rated"))
    assert len(rated) == 25
    # At most 10 starts per sliding second (less 0.1 s for the claim-to-start delay in each worker).
    for i in range(len(rated) - 10):
        assert rated[i + 10] - rated[i] >= 0.9, rated

    async def check_batch() -> fastjobs.BatchProgress:
        app = fastjobs.App(url, prefix=prefix)
        try:
            batch = await app.get_batch(batch_id)
            assert batch is not None
            return await batch.progress()
        finally:
            await app.close()
            await wipe_namespace(url, prefix)

    assert asyncio.run(check_batch()) == fastjobs.BatchProgress(60, 60, 0, 0, True)
