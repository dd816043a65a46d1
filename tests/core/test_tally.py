"""tally_starts (the wait histograms of a start batch): both twins agree with a plain
reference, and the worker's metrics add it up as they did per job."""

from __future__ import annotations

import bisect
import types
from typing import Any

from hypothesis import given, strategies as st

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def reference(records: list[Any], now: float, bounds: tuple[float, ...]) -> list[tuple[Any, Any, int, list[Any]]]:
    out: list[tuple[Any, Any, int, list[Any]]] = []
    for r in records:
        if not out or (out[-1][0], out[-1][1]) != (r.queue, r.task):
            out.append((r.queue, r.task, 0, [0.0] + [0] * (len(bounds) + 1)))
        queue, task, n, cell = out[-1]
        out[-1] = (queue, task, n + 1, cell)
        if r.attempt == 1:
            due = max(r.run_at, r.enqueued_at)
            wait = now - due if now > due else 0.0
            cell[0] += wait
            cell[bisect.bisect_left(bounds, wait) + 1] += 1
    return out


RECORDS = st.lists(
    st.tuples(st.sampled_from(["q1", "q2"]), st.sampled_from(["a", "b"]), st.sampled_from([1, 1, 1, 2]),
              st.floats(0, 100), st.floats(0, 100)),
    max_size=40,
)


@given(rows=RECORDS, now=st.floats(0, 120))
def test_both_twins_match_the_reference(core: types.SimpleNamespace, rows: list[tuple[Any, ...]], now: float) -> None:
    records = [core.codec.JobRecord(id="j", queue=q, task=t, attempt=a, run_at=run_at, enqueued_at=enq)
               for q, t, a, run_at, enq in rows]
    got = core.codec.tally_starts(records, now, BOUNDS)
    want = reference(records, now, BOUNDS)
    assert [(q, t, n) for q, t, n, _ in got] == [(q, t, n) for q, t, n, _ in want]
    for (_, _, _, cell), (_, _, _, expected) in zip(got, want):
        assert cell[1:] == expected[1:]
        assert abs(cell[0] - expected[0]) <= 1e-9 * max(1.0, abs(expected[0]))


def test_the_worker_metrics_count_starts_and_waits() -> None:
    from fastjobs._core import JobRecord
    from fastjobs.metrics import WAIT_BOUNDS, WorkerMetrics

    metrics = WorkerMetrics()
    first = [JobRecord(id="j", queue="q", task="a", attempt=1, enqueued_at=100.0) for _ in range(3)]
    retry = JobRecord(id="j", queue="q", task="a", attempt=2, enqueued_at=100.0)
    other = JobRecord(id="j", queue="q", task="b", attempt=1, run_at=104.0, enqueued_at=100.0)
    metrics.add_started([*first, retry, other], 104.5)
    metrics.add_started(first[:1], 100.0)
    assert metrics.started == {("q", "a"): 5, ("q", "b"): 1}
    cell = metrics.wait[("q", "a")]
    assert cell[0] == 4.5 * 3 and cell[bisect.bisect_left(WAIT_BOUNDS, 4.5) + 1] == 3 and cell[1] == 1  # the retry: uncounted
    assert metrics.wait[("q", "b")][bisect.bisect_left(WAIT_BOUNDS, 0.5) + 1] == 1  # from run_at, not enqueued_at
