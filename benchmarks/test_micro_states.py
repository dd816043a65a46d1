"""Micro-benchmark of the retry path, compiled against pure side by side.

A worker runs this path once per failed job: check the active -> retry_pending
move, then decide when the job runs again (exponential backoff, full jitter).

    python -m pytest benchmarks/test_micro_states.py --benchmark-enable -q
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

LOOPS = 10_000


@pytest.mark.benchmark(group="backoff+transition")
def test_backoff_and_transition(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    states = core.states
    check_transition = states.check_transition
    decide_retry = states.decide_retry
    backoff = states.Backoff("exponential", base=1.0, factor=2.0, cap=3600.0, jitter="full")
    active, retry_pending = states.ACTIVE, states.RETRY_PENDING
    now = 1_700_000_000.0

    def retry_path() -> float:
        when = 0.0
        for i in range(LOOPS):
            check_transition(active, retry_pending)
            _, when = decide_retry(i % 4 + 1, 5, now, backoff, seed=i)
        return when

    benchmark.extra_info["implementation"] = core.kind
    benchmark.extra_info["loops"] = LOOPS
    when = benchmark(retry_path)
    assert now <= when <= now + 8.0
