"""Batch callbacks run once, and limits hold, with three real worker processes on a shared backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace
from tests.process.pool import worker_pool, pool_env

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

    with worker_pool("tests.process.workflow_app:app", pool_env(url, prefix, runs),
                     "--processes", "3", "--concurrency", "10", "--grace", "5") as pool:
        batch_id = asyncio.run(enqueue())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kinds = [line.split()[0] for line in runs.read_text().splitlines()]
            if kinds.count("capped") == 12 and kinds.count("rated") == 25 and "then" in kinds and "finally" in kinds:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a second run of a callback, if there were one, would land meanwhile
    assert pool.returncode == 0, pool.stderr
    assert pool.stderr.count("worker started") == 3, pool.stderr
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
