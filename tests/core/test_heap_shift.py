"""PriorityIndex.shift_delayed (both twins): after any mix of pushes, removals, pops
and shifts, the index serves exactly what a fresh index holding the shifted due times would."""

from __future__ import annotations

import types

from hypothesis import given, settings
from hypothesis import strategies as st

DUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 1e9])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(-2, 2), DUES),
        st.tuples(st.just("shift"), st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.0, 1e12])),
        st.tuples(st.just("remove"), st.integers(0, 40)),
        st.tuples(st.just("pop"), st.integers(0, 4), st.sampled_from([0.0, 1.0, 2.5, 6.0])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_a_shifted_index_serves_like_a_fresh_one(core: types.SimpleNamespace, ops: list[tuple]) -> None:
    index = core.heap.PriorityIndex()
    model: dict[int, list] = {}  # id -> [priority, due, seq, ready]; due 0.0: ready
    seq = 0
    for op in ops:
        if op[0] == "push":
            seq += 1
            index.push(seq, op[1], op[2])
            model[seq] = [op[1], op[2], seq]
        elif op[0] == "shift":
            delayed = [m for m in model.values() if m[1] > 0.0]
            assert index.shift_delayed(op[1]) == len(delayed)
            for m in delayed:
                m[1] = max(m[1] - op[1], 5e-324)
        elif op[0] == "remove":
            assert index.remove(op[1]) == (op[1] in model)
            model.pop(op[1], None)
        else:
            n, now = op[1], op[2]
            for m in model.values():
                if 0.0 < m[1] <= now:
                    m[1] = 0.0  # promoted: ready, by priority then push order
            ready = sorted((job_id for job_id, m in model.items() if m[1] == 0.0),
                           key=lambda job_id: (-model[job_id][0], model[job_id][2]))
            assert index.pop(n, now) == ready[:n]
            for job_id in ready[:n]:
                del model[job_id]
        delayed_dues = [m[1] for m in model.values() if m[1] > 0.0]
        assert index.peek_due() == (min(delayed_dues) if delayed_dues else None)
    for m in model.values():
        m[1] = 0.0
    assert index.pop(1000, 1e300) == sorted(model, key=lambda job_id: (-model[job_id][0], model[job_id][2]))
