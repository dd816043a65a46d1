"""The memory backend's job record: same fields and values in both twins; the compiled
one is invisible to the cyclic GC."""

from __future__ import annotations

import gc
import importlib.machinery
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastjobs.backends.base import NewJob
from tests.conftest import import_compiled

FIELDS = (
    "id", "queue", "state", "priority", "attempt", "max_attempts", "token", "body", "result",
    "errors", "enqueued_at", "run_at", "started_at", "finished_at", "lease_until", "unique_key",
)


def values(slot: object) -> dict[str, object]:
    return {name: getattr(slot, name) for name in FIELDS}


def test_compiled_module_is_really_compiled(core: types.SimpleNamespace) -> None:
    if core.kind == "compiled":
        assert core.store.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), core.store.__file__
        assert core.store.__name__ == "fastjobs._core._store_c"
    else:
        assert core.store.__file__.endswith(".py")
        assert core.store.__name__ == "fastjobs._core._store_py"


@given(
    delay=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    priority=st.integers(-1_000_000, 1_000_000),
    unique_key=st.none() | st.text(max_size=5),
)
def test_built_from_a_new_job(core: types.SimpleNamespace, delay: float, now: float, priority: int, unique_key: str | None) -> None:
    new = NewJob("id1", "emails", priority, delay, 5, b"body", unique_key)
    slot = core.store.JobSlot(new, now)
    expected_state = core.states.SCHEDULED if delay > 0 else core.states.QUEUED
    assert values(slot) == {
        "id": "id1", "queue": "emails", "state": expected_state, "priority": priority, "attempt": 0,
        "max_attempts": 5, "token": 0, "body": b"body", "result": None, "errors": None,
        "enqueued_at": now, "run_at": now + delay if delay > 0 else now, "started_at": None,
        "finished_at": None, "lease_until": None, "unique_key": unique_key,
    }


def test_fields_are_writable(core: types.SimpleNamespace) -> None:
    slot = core.store.JobSlot(("a", "q", 0, 0.0, 1, b"", None), 1.0)
    slot.state = core.states.ACTIVE
    slot.attempt += 1
    slot.errors = [b"e"]
    assert (slot.state, slot.attempt, slot.errors) == (core.states.ACTIVE, 1, [b"e"])
    with pytest.raises(AttributeError):
        slot.not_a_field = 1  # type: ignore[attr-defined]


def test_twins_agree() -> None:
    from fastjobs._core import _store_py

    compiled = import_compiled("store")
    for new in [("a", "q", 3, 0.0, 2, b"x", None), ("b", "r", -1, 2.5, 9, b"", "k")]:
        assert values(compiled.JobSlot(new, 10.0)) == values(_store_py.JobSlot(new, 10.0))


def test_compiled_record_is_not_tracked_by_the_gc() -> None:
    compiled = import_compiled("store")
    slot = compiled.JobSlot(("a", "q", 0, 0.0, 1, b"", None), 1.0)
    slot.errors = [b"e"]
    assert not gc.is_tracked(slot)


@given(now=st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4 * 10**9),
       delay=st.sampled_from([0.0, 0, 1.5, 2]))
def test_enqueue_time_is_one_float(core: types.SimpleNamespace, now: float, delay: float) -> None:
    """The slots of one enqueue share the clock's float (an int clock is turned into a float);
    the fields come from a NewJob, a plain tuple or a list alike."""
    slots = [core.store.JobSlot(new, now) for new in (
        NewJob("a", "q", 0, delay, 1, b"", None), ("b", "q", 0, delay, 1, b"", None, 0.0),
        ["c", "q", 0, delay, 1, b"", None])]
    for slot in slots:
        assert type(slot.enqueued_at) is float and slot.enqueued_at == now
        assert type(slot.run_at) is float and slot.run_at == now + delay
    if isinstance(now, float):
        assert all(slot.enqueued_at is now for slot in slots)
        assert all(slot.run_at is now for slot in slots if not delay)


def test_too_few_fields_raise(core: types.SimpleNamespace) -> None:
    with pytest.raises(IndexError):
        core.store.JobSlot(("a", "q", 0, 0.0, 1, b""), 1.0)


def test_lease_makes_the_slots_active_and_gives_their_claims(core: types.SimpleNamespace) -> None:
    from fastjobs.backends.base import Claim

    store = {i: core.store.JobSlot((i, "q", 0, 0.0, 3, i.encode(), None), 1.0) for i in ("a", "b", "c")}
    store["b"].attempt, store["b"].token = 1, 4  # a retried job
    active: dict[str, Any] = {}
    claims: list[Claim] = [Claim("x", 1, 1, b"")]  # appended to, not replaced
    core.store.lease(store, active, ["b", "a"], 10.0, 40.0, Claim, claims)
    assert claims == [Claim("x", 1, 1, b""), Claim("b", 5, 2, b"b"), Claim("a", 1, 1, b"a")]
    assert all(type(c) is Claim for c in claims)
    assert list(active) == ["b", "a"] and active["a"] is store["a"]
    assert [(s.state, s.started_at, s.lease_until) for s in (store["a"], store["b"])] == [
        (core.states.ACTIVE, 10.0, 40.0)] * 2
    assert values(store["c"])["state"] == core.states.QUEUED
    with pytest.raises(KeyError):
        core.store.lease(store, active, ["missing"], 10.0, 40.0, Claim, claims)


@given(plan=st.lists(st.sampled_from(["ok", "stale", "token", "retry", "unique", "dependant"]), max_size=8))
def test_succeed_applies_the_leading_plain_successes(core: types.SimpleNamespace, plan: list[str]) -> None:
    """The twins agree with each other and with the rule: stale acks are refused, plain successes
    applied, and the first other ack stops the loop where the caller takes over."""
    from fastjobs.backends.base import Ack

    active: dict[str, Any] = {}
    acks: list[Ack] = []
    dependants: dict[str, object] = {}
    for n, what in enumerate(plan):
        job_id = f"j{n}"
        slot = core.store.JobSlot((job_id, "q", 0, 0.0, 3, b"", "key" if what == "unique" else None), 1.0)
        slot.state, slot.token, slot.lease_until = core.states.ACTIVE, 2, 9.0
        if what != "stale":
            active[job_id] = slot
        if what == "dependant":
            dependants[job_id] = ["child"]
        kind = 1 if what == "retry" else 0
        acks.append(Ack(job_id, 1 if what == "token" else 2, kind, b"r%d" % n))
    slots = dict(active)
    applied: list[bool] = []
    succeeded: list[Any] = []
    stop = core.store.succeed(active, acks, 5.0, 0, dependants, applied, succeeded)
    expected_stop = next((n for n, what in enumerate(plan) if what in ("retry", "unique", "dependant")), len(plan))
    assert stop == expected_stop
    assert applied == [what == "ok" for what in plan[:stop]]
    assert [s.id for s in succeeded] == [f"j{n}" for n, what in enumerate(plan[:stop]) if what == "ok"]
    for n, what in enumerate(plan):
        slot = slots.get(f"j{n}")
        if what == "ok" and n < stop:
            assert f"j{n}" not in active
            assert (slot.state, slot.result, slot.finished_at, slot.lease_until) == (
                core.states.SUCCEEDED, b"r%d" % n, 5.0, None)
        elif slot is not None:
            assert active[f"j{n}"] is slot and slot.state == core.states.ACTIVE and slot.lease_until == 9.0


@given(plan=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["plain", "delayed", "unique", "parents",
                                                                             "limit", "tags"])), max_size=10))
def test_insert_stores_the_leading_plain_jobs(core: types.SimpleNamespace, plan: list[tuple[str, str]]) -> None:
    from fastjobs.backends.base import Limit

    jobs = [NewJob(f"j{n}", queue, n % 3, 5.0 if what == "delayed" else 0.0, 3, b"x", "k" if what == "unique" else None,
                   0.0, ("p",) if what == "parents" else (), 0, Limit("key", 1) if what == "limit" else None, f"t{n}",
                   ("red",) if what == "tags" else ())
            for n, (queue, what) in enumerate(plan)]
    store: dict[str, Any] = {}
    tasks: dict[str, str] = {}
    live: dict[str, dict[str, None]] = {}
    indexes = {q: core.heap.PriorityIndex() for q in ("a", "b")}
    asked: list[str] = []

    def live_of(queue: str) -> dict[str, None]:
        asked.append(queue)
        return live.setdefault(queue, {})

    stop = core.store.insert(jobs, 100.0, store, tasks, live_of, indexes.__getitem__)
    assert stop == next((n for n, (_, what) in enumerate(plan) if what not in ("plain", "delayed")), len(plan))
    stored = jobs[:stop]
    assert list(store) == [j.id for j in stored] and tasks == {j.id: j.task for j in stored}
    assert all(values(store[j.id]) == values(core.store.JobSlot(j, 100.0)) for j in stored)
    assert {q: list(ids) for q, ids in live.items()} == {
        q: [j.id for j in stored if j.queue == q] for q in {j.queue for j in stored}}
    assert asked == [q for n, q in enumerate(j.queue for j in stored) if n == 0 or stored[n - 1].queue != q]
    for q, index in indexes.items():
        ready = index.pop(100, 100.0)
        assert sorted(ready) == sorted(j.id for j in stored if j.queue == q and not j.delay)
        assert len(index) == sum(1 for j in stored if j.queue == q and j.delay)


def test_insert_refuses_a_short_row(core: types.SimpleNamespace) -> None:
    with pytest.raises(IndexError):
        core.store.insert([("a", "q", 0, 0.0, 1, b"", None)], 1.0, {}, {}, lambda q: {}, lambda q: None)
