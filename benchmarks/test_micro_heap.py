"""Micro-benchmarks of the priority/delay index, compiled against pure side by side.

The memory backend runs every enqueue through ``push``, every claim through
``pop`` and every cancel through ``remove``; these time those paths on 10,000
jobs with mixed priorities, a quarter of them delayed.

    python -m pytest benchmarks/test_micro_heap.py --benchmark-enable -q
"""

from __future__ import annotations

import random
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

JOBS = 10_000
CLAIM_BATCH = 100  # what a worker asks for at a time
REMOVALS = 5_000


def _rows() -> list[tuple[int, int, float]]:
    rnd = random.Random(1234)
    return [
        (job_id, rnd.randrange(-5, 6), rnd.uniform(1.0, 100.0) if rnd.random() < 0.25 else 0.0)
        for job_id in range(JOBS)
    ]


def test_push_then_pop_all(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    benchmark.group = "heap push+pop"
    benchmark.extra_info["implementation"] = core.kind
    benchmark.extra_info["jobs"] = JOBS
    rows = _rows()
    index_type = core.heap.PriorityIndex
    now = 1000.0  # past every due time: the first pop promotes the delayed quarter

    def push_then_pop_all() -> int:
        index = index_type()
        push = index.push
        for job_id, priority, due in rows:
            push(job_id, priority, due)
        popped = 0
        while True:
            batch = index.pop(CLAIM_BATCH, now)
            if not batch:
                return popped
            popped += len(batch)

    assert benchmark(push_then_pop_all) == JOBS


def test_remove(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    benchmark.group = "heap remove"
    benchmark.extra_info["implementation"] = core.kind
    benchmark.extra_info["jobs"] = JOBS
    benchmark.extra_info["removals"] = REMOVALS
    rows = _rows()
    victims = random.Random(99).sample(range(JOBS), REMOVALS)
    index_type = core.heap.PriorityIndex

    def filled_index() -> tuple[tuple[Any, ...], dict[str, Any]]:
        index = index_type()
        index.push_many(rows)
        return (index,), {}

    def remove_half(index: Any) -> int:
        remove = index.remove
        for job_id in victims:
            remove(job_id)
        return len(index)

    left = benchmark.pedantic(remove_half, setup=filled_index, rounds=60, warmup_rounds=2)
    assert left == JOBS - REMOVALS
