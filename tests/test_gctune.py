"""The collector's young-generation threshold while workers run (fastjobs.gctune)."""

from __future__ import annotations

import asyncio
import gc

import fastjobs
from fastjobs import gctune


def threshold_probe(hold: float = 0.0) -> tuple[fastjobs.App, fastjobs.Task[[], None], list[int]]:
    """An App whose one task records the young-generation threshold its handler sees (then holds its slot)."""
    app = fastjobs.App("memory://")
    seen: list[int] = []

    @app.task
    async def look() -> None:
        seen.append(gc.get_threshold()[0])
        await asyncio.sleep(hold)

    return app, look, seen


async def test_raised_while_any_worker_runs_and_put_back_after_the_last() -> None:
    before = gc.get_threshold()
    app, look, seen = threshold_probe(hold=0.05)
    first = app.worker(handle_signals=False, poll_interval=0.01)
    second = app.worker(handle_signals=False, poll_interval=0.01)
    running = [asyncio.ensure_future(first.run()), asyncio.ensure_future(second.run())]
    await look.enqueue()
    while not seen:
        await asyncio.sleep(0.01)
    first.request_stop()
    await running[0]
    assert gc.get_threshold()[0] == gctune.THRESHOLD  # the second still runs
    await look.enqueue()
    while len(seen) < 2:
        await asyncio.sleep(0.01)
    second.request_stop()
    await running[1]
    assert seen == [gctune.THRESHOLD] * 2
    assert gc.get_threshold() == before
    await app.close()


async def test_tune_gc_false_and_a_disabled_threshold_are_left_alone() -> None:
    before = gc.get_threshold()
    app, look, seen = threshold_probe()
    await look.enqueue()
    await app.worker(handle_signals=False, burst=True, tune_gc=False).run()
    assert seen == [before[0]] and before[0] < gctune.THRESHOLD  # untouched while it ran
    gc.set_threshold(0)  # the application turned automatic collection off
    try:
        await look.enqueue()
        await app.worker(handle_signals=False, burst=True).run()
        assert seen[1] == 0 and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
    await app.close()


async def test_a_large_enqueue_many_runs_without_young_collections_and_puts_the_threshold_back() -> None:
    app, look, _ = threshold_probe()
    before = gc.get_threshold()
    young: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(1)

    calls = [look.call() for _ in range(5_000)]
    gc.collect()
    young.clear()
    gc.callbacks.append(count)
    try:
        await app.enqueue_many(calls)
    finally:
        gc.callbacks.remove(count)
    # The batch's 5,000 NewJobs live until it is stored: at the default 700, several collections.
    assert young == []
    assert gc.get_threshold() == before
    await app.close()
