"""The priority/delay index (``_heap_c`` and its twin ``_heap_py``).

Every test runs against both implementations through the session ``core``
fixture. Besides unit tests, the index is checked against a deliberately naive
sorted-list model (hypothesis state machine), and the two implementations are
checked against each other, error messages included, on random operation
sequences that also contain invalid input.
"""

from __future__ import annotations

import copy
import doctest
import importlib
import importlib.machinery
import math
import pickle
import random
import sys
import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import import_compiled

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

# `core` is session-scoped, which hypothesis accepts; the suppression only
# keeps a future fixture-scope change from turning into a confusing failure.
HYPOTHESIS = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def drain(index: Any, now: float = 0.0) -> list[Hashable]:
    return list(index.pop(len(index) + 1, now))


# -- empty index, basic ordering ---------------------------------------------


def test_compiled_module_is_really_compiled(core: types.SimpleNamespace) -> None:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    if core.kind == "compiled":
        assert core.heap.__file__.endswith(suffixes), core.heap.__file__
    else:
        assert core.heap.__file__.endswith(".py")


def test_empty_index(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    assert len(idx) == 0
    assert not idx
    assert idx.ready_count == 0
    assert idx.delayed_count == 0
    assert idx.peek_due() is None
    assert idx.pop(10, 1e9) == []
    assert idx.promote(1e9) == 0
    assert idx.remove("nope") is False
    assert "nope" not in idx
    assert idx.priority_of("nope") is None
    assert repr(idx) == "PriorityIndex(ready=0, delayed=0)"


def test_docstring_example_runs(core: types.SimpleNamespace) -> None:
    cls = core.heap.PriorityIndex
    test = doctest.DocTestParser().get_doctest(
        cls.__doc__, {"PriorityIndex": cls}, "PriorityIndex", None, 0
    )
    assert test.examples, "the class docstring should carry an example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_higher_priority_first_then_push_order(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    for job_id, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -3), ("f", 10), ("g", 0)]:
        idx.push(job_id, priority)
    assert idx.pop(100, 0.0) == ["f", "b", "d", "a", "c", "g", "e"]
    assert len(idx) == 0


def test_pop_takes_at_most_n_and_keeps_the_rest_in_order(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    for i in range(10):
        idx.push(i, i % 3)
    assert idx.pop(3, 0.0) == [2, 5, 8]
    assert idx.pop(4, 0.0) == [1, 4, 7, 0]
    assert len(idx) == 3
    assert idx.pop(100, 0.0) == [3, 6, 9]


@pytest.mark.parametrize("n", [0, -1, -(10**30), False])
def test_pop_n_not_positive_returns_empty_but_still_promotes(
    core: types.SimpleNamespace, n: int
) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("ready")
    idx.push("delayed", due=5.0)
    assert idx.pop(n, 5.0) == []
    # "promote first" holds even when nothing is taken.
    assert (idx.ready_count, idx.delayed_count) == (2, 0)


def test_pop_n_huge_or_bool(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push_many([(i, 0, 0.0) for i in range(5)])
    assert idx.pop(True, 0.0) == [0]
    assert idx.pop(10**30, 0.0) == [1, 2, 3, 4]


@pytest.mark.parametrize("n", [1.0, "1", None])
def test_pop_n_must_be_an_int(core: types.SimpleNamespace, n: object) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("a")
    with pytest.raises(TypeError):
        idx.pop(n, 0.0)
    assert len(idx) == 1


# -- delays and promotion ----------------------------------------------------


@pytest.mark.parametrize("due", [0.0, -0.0, -1.0, -math.inf, 0, False])
def test_due_not_positive_is_ready_now(core: types.SimpleNamespace, due: float) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("job", due=due)
    assert (idx.ready_count, idx.delayed_count) == (1, 0)
    assert idx.peek_due() is None


def test_due_in_the_past_waits_for_the_next_pop_or_promote(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("late", due=1.0)
    assert (idx.ready_count, idx.delayed_count) == (0, 1)
    assert idx.pop(1, 100.0) == ["late"]


def test_promote_boundary_due_equal_to_now(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("at", due=10.0)
    idx.push("after", due=math.nextafter(10.0, math.inf))
    assert idx.promote(math.nextafter(10.0, 0.0)) == 0
    assert idx.promote(10.0) == 1
    assert (idx.ready_count, idx.delayed_count) == (1, 1)
    assert idx.pop(5, 10.0) == ["at"]
    assert idx.peek_due() == math.nextafter(10.0, math.inf)


def test_promote_returns_how_many_moved(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    for i, due in enumerate([5.0, 1.0, 3.0, 3.0, 8.0]):
        idx.push(i, 0, due)
    assert idx.promote(0.5) == 0
    assert idx.promote(3.0) == 3
    assert idx.peek_due() == 5.0
    assert idx.promote(3.0) == 0
    assert idx.promote(math.inf) == 2
    assert idx.peek_due() is None
    assert idx.pop(10, 0.0) == [0, 1, 2, 3, 4]  # FIFO by push order, not due order


def test_promote_with_nan_now_moves_nothing(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("a", due=1.0)
    assert idx.promote(math.nan) == 0
    assert idx.pop(1, math.nan) == []
    assert idx.delayed_count == 1


def test_promoted_entry_keeps_its_push_time_place(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("delayed-first", 1, due=5.0)
    idx.push("ready-second", 1)
    idx.push("ready-low", 0)
    idx.push("delayed-high", 9, due=6.0)
    assert idx.pop(1, 0.0) == ["ready-second"]
    idx.push("ready-third", 1)
    assert idx.pop(10, 6.0) == ["delayed-high", "delayed-first", "ready-third", "ready-low"]


def test_peek_due_tracks_the_earliest_delayed(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("b", due=20.0)
    assert idx.peek_due() == 20.0
    idx.push("a", due=10)  # an int due is a time like any other
    peek = idx.peek_due()
    assert peek == 10.0 and type(peek) is float
    idx.push("inf", due=math.inf)
    idx.remove("a")
    assert idx.peek_due() == 20.0
    assert idx.pop(5, 20.0) == ["b"]
    assert idx.peek_due() == math.inf
    assert idx.pop(5, 1e300) == []
    assert idx.pop(5, math.inf) == ["inf"]
    assert idx.peek_due() is None


@pytest.mark.parametrize("bad", ["1.0", None, object()])
def test_due_and_now_must_be_numbers(core: types.SimpleNamespace, bad: object) -> None:
    idx = core.heap.PriorityIndex()
    with pytest.raises(TypeError):
        idx.push("a", 0, bad)
    with pytest.raises(TypeError):
        idx.promote(bad)
    with pytest.raises(TypeError):
        idx.pop(1, bad)
    assert len(idx) == 0


def test_due_nan_is_refused(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    with pytest.raises(ValueError, match="NaN"):
        idx.push("a", 0, math.nan)
    assert "a" not in idx and len(idx) == 0


def test_due_accepts_float_like_objects(core: types.SimpleNamespace) -> None:
    class Seconds:
        def __float__(self) -> float:
            return 7.5

    idx = core.heap.PriorityIndex()
    idx.push("a", 0, Seconds())
    assert idx.peek_due() == 7.5


# -- priorities --------------------------------------------------------------


def test_extreme_priorities(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    for job_id, priority in [("zero", 0), ("min", I64_MIN), ("max", I64_MAX), ("neg", -1), ("max2", I64_MAX)]:
        idx.push(job_id, priority)
    assert idx.priority_of("min") == I64_MIN
    assert idx.priority_of("max") == I64_MAX
    assert idx.pop(10, 0.0) == ["max", "max2", "zero", "neg", "min"]


@pytest.mark.parametrize("priority", [I64_MAX + 1, I64_MIN - 1, 10**100, -(10**100)])
def test_priority_out_of_int64_range_overflows(core: types.SimpleNamespace, priority: int) -> None:
    idx = core.heap.PriorityIndex()
    with pytest.raises(OverflowError, match="64-bit"):
        idx.push("a", priority)
    assert len(idx) == 0 and "a" not in idx


@pytest.mark.parametrize("priority", [1.0, "1", None, 2.5, [1]])
def test_priority_must_be_an_int(core: types.SimpleNamespace, priority: object) -> None:
    idx = core.heap.PriorityIndex()
    with pytest.raises(TypeError, match="priority must be an int"):
        idx.push("a", priority)
    assert len(idx) == 0


def test_bool_priority_is_an_int(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("one", 1)
    idx.push("true", True)
    idx.push("false", False)
    prio = idx.priority_of("true")
    assert prio == 1 and type(prio) is int
    assert idx.pop(3, 0.0) == ["one", "true", "false"]


def test_priority_accepts_index_objects(core: types.SimpleNamespace) -> None:
    class Rank:
        def __index__(self) -> int:
            return 4

    idx = core.heap.PriorityIndex()
    idx.push("a", Rank())
    assert idx.priority_of("a") == 4


def test_priority_of(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("ready", -7)
    idx.push("delayed", 3, due=9.0)
    assert idx.priority_of("ready") == -7
    assert idx.priority_of("delayed") == 3
    assert idx.priority_of("absent") is None
    idx.pop(1, 0.0)
    assert idx.priority_of("ready") is None
    idx.promote(9.0)
    assert idx.priority_of("delayed") == 3
    with pytest.raises(TypeError):
        idx.priority_of([])


# -- ids ---------------------------------------------------------------------


def test_duplicate_push_is_refused_and_changes_nothing(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("a", 1)
    idx.push("d", 1, due=5.0)
    for job_id, due in [("a", 0.0), ("a", 3.0), ("d", 0.0), ("d", 5.0)]:
        with pytest.raises(ValueError, match=r"job id '.' is already in the index"):
            idx.push(job_id, 99, due)
    assert (idx.ready_count, idx.delayed_count) == (1, 1)
    assert idx.priority_of("a") == 1
    assert idx.pop(5, 5.0) == ["a", "d"]


def test_equal_ids_are_the_same_job(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push(1)
    with pytest.raises(ValueError):
        idx.push(1.0)
    with pytest.raises(ValueError):
        idx.push(True)
    assert 1.0 in idx and True in idx
    result = idx.pop(1, 0.0)
    assert result == [1] and type(result[0]) is int  # the object that was pushed


def test_id_can_be_queued_again_after_pop_or_remove(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("a")
    assert idx.pop(1, 0.0) == ["a"]
    idx.push("a", due=1.0)
    assert idx.remove("a") is True
    idx.push("a", 2)
    assert idx.priority_of("a") == 2


def test_unhashable_id(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    with pytest.raises(TypeError, match="unhashable"):
        idx.push(["list"])
    assert len(idx) == 0
    idx.push("x")
    with pytest.raises(TypeError):
        idx.remove({})
    with pytest.raises(TypeError):
        [] in idx  # noqa: B015


def test_mixed_id_types(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    ids: list[Hashable] = ["s", 1, (2, "t"), b"bytes", None, frozenset({3}), 4.5]
    for job_id in ids:
        idx.push(job_id)
    assert all(job_id in idx for job_id in ids)
    assert idx.pop(100, 0.0) == ids


# -- remove, counts, clear -----------------------------------------------------


def test_remove_from_either_heap(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    for i in range(8):
        idx.push(f"r{i}", i % 3)
        idx.push(f"d{i}", i % 3, due=float(i + 1))
    assert idx.remove("r4") is True
    assert idx.remove("r4") is False
    assert idx.remove("d0") is True
    assert idx.remove("d7") is True
    assert "r4" not in idx and "d0" not in idx
    assert (len(idx), idx.ready_count, idx.delayed_count) == (13, 7, 6)
    assert idx.peek_due() == 2.0
    assert idx.pop(100, 0.0) == ["r2", "r5", "r1", "r7", "r0", "r3", "r6"]
    assert idx.pop(100, 100.0) == ["d2", "d5", "d1", "d4", "d3", "d6"]


def test_counts_follow_every_operation(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()

    def counts() -> tuple[int, int, int]:
        return len(idx), idx.ready_count, idx.delayed_count

    idx.push("a")
    idx.push("b", due=1.0)
    idx.push("c", due=2.0)
    assert counts() == (3, 1, 2)
    idx.promote(1.0)
    assert counts() == (3, 2, 1)
    idx.pop(1, 0.0)
    assert counts() == (2, 1, 1)
    idx.remove("c")
    assert counts() == (1, 1, 0)
    idx.push_many([("x", 0, 0.0), ("y", 0, 3.0)])
    assert counts() == (3, 2, 1)
    assert repr(idx) == "PriorityIndex(ready=2, delayed=1)"


def test_clear(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push_many([(i, i % 4, float(i % 3)) for i in range(100)])
    idx.clear()
    assert (len(idx), idx.ready_count, idx.delayed_count) == (0, 0, 0)
    assert idx.peek_due() is None and 5 not in idx and idx.pop(10, 1e9) == []
    idx.push(5, 1)
    idx.push(6, 2, due=1.0)
    assert idx.pop(10, 1.0) == [6, 5]
    idx.clear()
    idx.clear()
    assert len(idx) == 0


# -- push_many ---------------------------------------------------------------


def test_push_many_keeps_batch_order_for_fifo(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("before", 1)
    idx.push_many((f"j{i}", 1 if i % 2 else 0, 0.0 if i < 4 else 2.0) for i in range(6))
    idx.push("after", 1)
    assert (idx.ready_count, idx.delayed_count) == (6, 2)
    assert idx.pop(100, 2.0) == ["before", "j1", "j3", "j5", "after", "j0", "j2", "j4"]


def test_push_many_accepts_lists_and_empty_batches(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push_many([])
    idx.push_many(iter(()))
    idx.push_many([["a", 1, 0], ("b", True, 1)])
    assert (idx.ready_count, idx.delayed_count) == (1, 1)
    assert idx.priority_of("b") == 1 and idx.peek_due() == 1.0


@pytest.mark.parametrize(
    ("batch", "error", "match"),
    [
        ([("n1", 0, 0.0), ("n2", 0, 0.0), ("n1", 5, 1.0)], ValueError, "more than once in this batch"),
        ([("n1", 0, 0.0), ("old", 0, 0.0)], ValueError, "already in the index"),
        ([("n1", 0, 0.0), ("n2", I64_MAX + 1, 0.0)], OverflowError, "64-bit"),
        ([("n1", 0, 0.0), ("n2", 1.5, 0.0)], TypeError, "priority must be an int"),
        ([("n1", 0, 0.0), ("n2", 0, math.nan)], ValueError, "NaN"),
        ([("n1", 0, 0.0), ("n2", 0, "soon")], TypeError, "real number"),
        ([("n1", 0, 0.0), ("n2", 0)], ValueError, "triples; got a row of 2 items"),
        ([("n1", 0, 0.0), ("n2", 0, 0.0, "x")], ValueError, "triples; got a row of 4 items"),
        ([("n1", 0, 0.0), 7], TypeError, "not iterable"),
        ([("n1", 0, 0.0), (["unhashable"], 0, 0.0)], TypeError, "unhashable"),
    ],
)
def test_push_many_is_all_or_nothing(
    core: types.SimpleNamespace, batch: list[Any], error: type[Exception], match: str
) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("old", 3)
    idx.push("later", 3, due=4.0)
    with pytest.raises(error, match=match):
        idx.push_many(batch)
    assert (len(idx), idx.ready_count, idx.delayed_count) == (2, 1, 1)
    assert "n1" not in idx and "n2" not in idx
    idx.push_many([("n1", 3, 0.0), ("n2", 3, 0.0)])  # the failed batch left no trace
    assert idx.pop(10, 4.0) == ["old", "later", "n1", "n2"]


def test_push_many_iterable_that_fails_midway_inserts_nothing(core: types.SimpleNamespace) -> None:
    def rows() -> Any:
        yield ("a", 0, 0.0)
        raise KeyError("source broke")

    idx = core.heap.PriorityIndex()
    with pytest.raises(KeyError):
        idx.push_many(rows())
    assert len(idx) == 0


# -- object lifetime and hostile ids -------------------------------------------


class Token:
    """An id whose lifetime can be observed through a weak reference."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Token({self.name})"


def test_ids_are_released_by_every_way_out(core: types.SimpleNamespace) -> None:
    tokens = [Token(str(i)) for i in range(6)]
    refs = [weakref.ref(t) for t in tokens]
    before = [sys.getrefcount(t) for t in tokens]
    idx = core.heap.PriorityIndex()
    idx.push_many((tokens[i], i, 0.0 if i % 2 else 1.0) for i in range(6))
    # Plain statements, not asserts: pytest's assertion rewriting keeps
    # sub-expression values alive, which would skew the refcounts.
    popped_names = [token.name for token in idx.pop(2, 0.0)]
    removed = idx.remove(tokens[0])
    idx.promote(1.0)
    assert popped_names == ["5", "3"] and removed is True
    assert sys.getrefcount(tokens[0]) == before[0]
    idx.clear()
    assert [sys.getrefcount(t) for t in tokens] == before
    for i in range(6):
        idx.push(tokens[i], due=float(i % 2))
    del idx  # dropping a non-empty index releases its ids too
    assert [sys.getrefcount(t) for t in tokens] == before
    del tokens
    assert all(ref() is None for ref in refs)


class Collider:
    """Ids that all share one hash, so every dict lookup calls ``__eq__``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_eq: Callable[[], object] | None = None

    def __hash__(self) -> int:
        return 42

    def __eq__(self, other: object) -> bool:
        if self.on_eq is not None:
            self.on_eq()
        return isinstance(other, Collider) and other.name == self.name

    def __repr__(self) -> str:
        return f"Collider({self.name})"


def test_mutating_the_index_from_an_ids_eq_is_refused(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    first, second = Collider("first"), Collider("second")
    idx.push(first, 1)
    mutations: list[Callable[[], object]] = [
        lambda: idx.push("intruder"),
        lambda: idx.pop(1, 0.0),
        lambda: idx.remove(first),
        lambda: idx.clear(),
        lambda: idx.promote(0.0),
        lambda: idx.push_many([("intruder", 0, 0.0)]),
    ]
    for mutation in mutations:
        first.on_eq = mutation
        with pytest.raises(RuntimeError, match="__hash__ or __eq__"):
            idx.push(second)
        with pytest.raises(RuntimeError, match="__hash__ or __eq__"):
            idx.push_many([("fine", 0, 0.0), (second, 0, 0.0)])
        with pytest.raises(RuntimeError, match="__hash__ or __eq__"):
            idx.remove(Collider("first"))
        with pytest.raises(RuntimeError, match="__hash__ or __eq__"):
            idx.priority_of(second)
        assert len(idx) == 1 and idx.ready_count == 1
    # Reading the index from __eq__ is fine.
    first.on_eq = lambda: (len(idx), idx.peek_due(), repr(idx))
    idx.push(second, 2)
    assert idx.priority_of(Collider("second")) == 2
    first.on_eq = None
    assert idx.pop(5, 0.0) == [second, first]
    assert len(idx) == 0


class Reviver:
    """An id whose ``__del__`` queues a new job in the same index."""

    def __init__(self, index: Any, name: str) -> None:
        self.index = index
        self.name = name

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reviver) and other.name == self.name

    def __del__(self) -> None:
        self.index.push(f"revived-{self.name}")


def test_an_ids_finaliser_may_use_the_index(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push(Reviver(idx, "a"), 5)
    idx.push("other", 1)
    idx.clear()
    assert idx.pop(10, 0.0) == ["revived-a"]
    idx.push(Reviver(idx, "b"), 5, due=3.0)
    probe = Reviver(idx, "b")
    assert idx.remove(probe) is True
    probe.index = core.heap.PriorityIndex()  # keep the probe's own __del__ out of idx
    assert idx.pop(10, 10.0) == ["revived-b"]


class FlakyHash:
    """An id whose ``__hash__`` raises on exactly one call (the ``fail_on``-th)."""

    def __init__(self, fail_on: int) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def __hash__(self) -> int:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ArithmeticError("flaky hash")
        return 7


def test_pop_that_cannot_unhash_an_id_leaves_it_queued(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    flaky = FlakyHash(fail_on=2)
    idx.push(flaky)  # hash call 1
    idx.push("x", -1)
    with pytest.raises(ArithmeticError):
        idx.pop(5, 0.0)  # call 2, while taking `flaky` out of the dict
    assert len(idx) == 2 and idx.ready_count == 2
    assert idx.pop(5, 0.0) == [flaky, "x"]


def test_push_many_rollback_keeps_an_id_it_cannot_take_back(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("b")
    flaky = FlakyHash(fail_on=2)
    with pytest.raises(ValueError, match="already in the index"):
        # "b" fails the batch; taking `flaky` back out needs hash call 2, which
        # fails, so it stays, fully queued rather than half inserted.
        idx.push_many([("a", 0, 0.0), (flaky, 1, 0.0), ("b", 0, 0.0)])
    assert "a" not in idx
    assert (len(idx), idx.ready_count) == (2, 2)
    assert idx.pop(5, 0.0) == [flaky, "b"]


def test_cannot_be_pickled_or_copied(core: types.SimpleNamespace) -> None:
    idx = core.heap.PriorityIndex()
    idx.push("a")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(idx)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(idx)


# -- the reference model -----------------------------------------------------


class Model:
    """The index's contract, stated as naively as possible (sorted lists)."""

    def __init__(self) -> None:
        self.ready: dict[Hashable, tuple[int, int]] = {}  # id -> (priority, seq)
        self.delayed: dict[Hashable, tuple[float, int, int]] = {}  # id -> (due, priority, seq)
        self.seq = 0

    def __contains__(self, job_id: Hashable) -> bool:
        return job_id in self.ready or job_id in self.delayed

    def push(self, job_id: Hashable, priority: int, due: float) -> None:
        if job_id in self:
            raise ValueError("already in the index")
        if due <= 0.0:
            self.ready[job_id] = (priority, self.seq)
        else:
            self.delayed[job_id] = (due, priority, self.seq)
        self.seq += 1

    def promote(self, now: float) -> int:
        due = [job_id for job_id, (d, _, _) in self.delayed.items() if d <= now]
        for job_id in due:
            _, priority, seq = self.delayed.pop(job_id)
            self.ready[job_id] = (priority, seq)
        return len(due)

    def pop(self, n: int, now: float) -> list[Hashable]:
        self.promote(now)
        order = sorted(self.ready, key=lambda job_id: (-self.ready[job_id][0], self.ready[job_id][1]))
        taken = order[: max(n, 0)]
        for job_id in taken:
            del self.ready[job_id]
        return taken

    def remove(self, job_id: Hashable) -> bool:
        return self.ready.pop(job_id, None) is not None or self.delayed.pop(job_id, None) is not None

    def peek(self, now: float) -> Hashable | None:
        self.promote(now)
        return min(self.ready, key=lambda job_id: (-self.ready[job_id][0], self.ready[job_id][1]), default=None)

    def peek_due(self) -> float | None:
        return min((d for d, _, _ in self.delayed.values()), default=None)

    def priority_of(self, job_id: Hashable) -> int | None:
        if job_id in self.ready:
            return self.ready[job_id][0]
        if job_id in self.delayed:
            return self.delayed[job_id][1]
        return None


IDS = st.one_of(st.integers(0, 12), st.sampled_from(["a", "b", "c"]))
PRIORITIES = st.one_of(st.integers(-2, 2), st.sampled_from([I64_MIN, I64_MAX, True, False]))
# Few distinct times, so that due == now and equal dues happen often.
TIMES = st.sampled_from([0.0, -1.0, 0.5, 1.0, 2.0, 2.5, 4.0, math.inf])
NOWS = st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 10.0, math.inf])


def test_matches_the_reference_model(core: types.SimpleNamespace) -> None:
    heap_module = core.heap

    class IndexVersusModel(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.idx = heap_module.PriorityIndex()
            self.model = Model()

        @rule(job_id=IDS, priority=PRIORITIES, due=TIMES)
        def push(self, job_id: Hashable, priority: int, due: float) -> None:
            if job_id in self.model:
                with pytest.raises(ValueError, match="already in the index"):
                    self.idx.push(job_id, priority, due)
            else:
                self.idx.push(job_id, priority, due)
                self.model.push(job_id, int(priority), due)

        @rule(rows=st.lists(st.tuples(IDS, PRIORITIES, TIMES), max_size=5))
        def push_many(self, rows: list[tuple[Hashable, int, float]]) -> None:
            ids = [job_id for job_id, _, _ in rows]
            if len(set(ids)) < len(ids) or any(job_id in self.model for job_id in ids):
                with pytest.raises(ValueError):
                    self.idx.push_many(rows)
            else:
                self.idx.push_many(rows)
                for job_id, priority, due in rows:
                    self.model.push(job_id, int(priority), due)

        @rule(n=st.integers(-1, 6), now=NOWS)
        def pop(self, n: int, now: float) -> None:
            assert self.idx.pop(n, now) == self.model.pop(n, now)

        @rule(now=NOWS)
        def promote(self, now: float) -> None:
            assert self.idx.promote(now) == self.model.promote(now)

        @rule(now=NOWS)
        def peek(self, now: float) -> None:
            assert self.idx.peek(now) == self.model.peek(now)

        @rule(job_id=IDS)
        def remove(self, job_id: Hashable) -> None:
            assert self.idx.remove(job_id) == self.model.remove(job_id)

        @precondition(lambda self: len(self.model.ready) + len(self.model.delayed) > 8)
        @rule()
        def clear(self) -> None:
            self.idx.clear()
            self.model = Model()

        @invariant()
        def same_contents(self) -> None:
            model = self.model
            assert len(self.idx) == len(model.ready) + len(model.delayed)
            assert self.idx.ready_count == len(model.ready)
            assert self.idx.delayed_count == len(model.delayed)
            assert self.idx.peek_due() == model.peek_due()
            for job_id in [*range(13), "a", "b", "c"]:
                assert (job_id in self.idx) == (job_id in model)
                assert self.idx.priority_of(job_id) == model.priority_of(job_id)

    run_state_machine_as_test(
        IndexVersusModel,
        settings=settings(HYPOTHESIS, max_examples=60, stateful_step_count=50),
    )


@HYPOTHESIS
@given(
    rows=st.lists(st.tuples(st.integers(-3, 3), TIMES), max_size=60),
    removals=st.sets(st.integers(0, 59)),
    pops=st.lists(st.tuples(st.integers(0, 7), NOWS), max_size=20),
)
def test_random_batches_match_the_model(
    core: types.SimpleNamespace,
    rows: list[tuple[int, float]],
    removals: set[int],
    pops: list[tuple[int, float]],
) -> None:
    idx = core.heap.PriorityIndex()
    model = Model()
    for i, (priority, due) in enumerate(rows):
        if i % 2:
            idx.push(i, priority, due)
        else:
            idx.push_many([(i, priority, due)])
        model.push(i, priority, due)
    for i in removals:
        assert idx.remove(i) == model.remove(i)
    for n, now in pops:
        assert idx.pop(n, now) == model.pop(n, now)
        assert idx.peek_due() == model.peek_due()
    assert drain(idx, math.inf) == model.pop(len(rows) + 1, math.inf)


# -- compiled and pure agree -----------------------------------------------------


def _other_heap_module(core: types.SimpleNamespace) -> types.ModuleType:
    if core.kind == "compiled":
        return importlib.import_module("fastjobs._core._heap_py")
    return import_compiled("heap")


class Odd:
    """An argument neither int nor float, with a stable repr for the trace."""

    def __repr__(self) -> str:
        return "Odd()"


ODD_PRIORITIES = st.sampled_from([1.5, "1", None, I64_MAX + 1, I64_MIN - 1, 10**40, Odd()])
ODD_TIMES = st.sampled_from([math.nan, "1.0", None, 10**400, Odd(), -math.inf, 3])
ODD_NS = st.sampled_from([1.0, None, 10**40, -(10**40), True, "2"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), IDS, st.one_of(PRIORITIES, ODD_PRIORITIES), st.one_of(TIMES, ODD_TIMES)),
        st.tuples(
            st.just("push_many"),
            st.lists(
                st.one_of(
                    st.tuples(IDS, PRIORITIES, TIMES),
                    st.tuples(IDS, ODD_PRIORITIES, TIMES),
                    st.tuples(IDS, PRIORITIES),
                    st.just(7),
                ),
                max_size=4,
            ),
        ),
        st.tuples(st.just("pop"), st.one_of(st.integers(-2, 5), ODD_NS), st.one_of(NOWS, ODD_TIMES)),
        st.tuples(st.just("promote"), st.one_of(NOWS, ODD_TIMES)),
        st.tuples(st.just("remove"), st.one_of(IDS, st.just([]))),
        st.tuples(st.just("priority_of"), IDS),
        st.tuples(st.just("peek_due")),
        st.tuples(st.just("clear")),
    ),
    max_size=80,
)


def _trace(module: types.ModuleType, operations: list[tuple[Any, ...]]) -> list[object]:
    """Apply ``operations`` and record every result, exception and count."""
    idx = module.PriorityIndex()
    trace: list[object] = []
    for name, *args in operations:
        try:
            result = getattr(idx, name)(*args)
        except Exception as exc:  # the exact type and message are part of the contract
            result = (type(exc).__name__, str(exc))
        trace.append((name, result, len(idx), idx.ready_count, idx.delayed_count, repr(idx)))
    trace.append(drain(idx, math.inf))
    return trace


@HYPOTHESIS
@given(operations=OPERATIONS)
def test_compiled_and_pure_agree_on_random_operations(
    core: types.SimpleNamespace, operations: list[tuple[Any, ...]]
) -> None:
    other = _other_heap_module(core)
    assert _trace(core.heap, operations) == _trace(other, operations)


def test_compiled_and_pure_agree_on_a_long_random_run(core: types.SimpleNamespace) -> None:
    other = _other_heap_module(core)
    rnd = random.Random(20240601)
    operations: list[tuple[Any, ...]] = []
    now = 0.0
    for _ in range(20_000):
        roll = rnd.random()
        job_id = rnd.randrange(3000)
        if roll < 0.45:
            due = rnd.choice([0.0, 0.0, now + rnd.uniform(0, 30), now - 1.0])
            operations.append(("push", job_id, rnd.randrange(-5, 6), due))
        elif roll < 0.55:
            rows = [(rnd.randrange(3000), rnd.randrange(-5, 6), rnd.choice([0.0, now + 5.0])) for _ in range(5)]
            operations.append(("push_many", rows))
        elif roll < 0.75:
            now += rnd.random()
            operations.append(("pop", rnd.randrange(0, 8), now))
        elif roll < 0.9:
            operations.append(("remove", job_id))
        elif roll < 0.95:
            operations.append(("promote", now + rnd.random()))
        else:
            operations.append(("priority_of", job_id))
    assert _trace(core.heap, operations) == _trace(other, operations)


# -- scale -----------------------------------------------------------------------


def test_a_million_entries(core: types.SimpleNamespace) -> None:
    """Push, remove and drain 10**6 entries (10**5 on the pure twin, for time)."""
    n = 1_000_000 if core.kind == "compiled" else 100_000
    # Deterministic, well-spread priorities in [-100, 100]; every 4th job delayed.
    priority = [(i * 7919) % 201 - 100 for i in range(n)]
    due = [float((i * 31) % 1000 + 1) if i % 4 == 0 else 0.0 for i in range(n)]
    idx = core.heap.PriorityIndex()
    half = n // 2
    push = idx.push
    for i in range(half):
        push(i, priority[i], due[i])
    idx.push_many(zip(range(half, n), priority[half:], due[half:]))
    assert len(idx) == n and idx.delayed_count == n // 4

    removed = range(3, n, 10)
    for i in removed:
        assert idx.remove(i) is True
    alive = [i for i in range(n) if i % 10 != 3]

    def expected(ids: list[int]) -> list[int]:
        # (-priority, push order) as one integer key: ids were pushed in order.
        keys = sorted((100 - priority[i]) * n + i for i in ids)
        return [key % n for key in keys]

    got: list[Hashable] = []
    while True:
        chunk = idx.pop(65_536, 0.0)
        if not chunk:
            break
        got += chunk
    assert got == expected([i for i in alive if due[i] == 0.0])

    cutoff = 500.0
    promoted = [i for i in alive if 0.0 < due[i] <= cutoff]
    assert idx.promote(cutoff) == len(promoted)
    assert idx.peek_due() == min(due[i] for i in alive if due[i] > cutoff)
    assert idx.pop(n, cutoff) == expected(promoted)
    assert idx.pop(n, math.inf) == expected([i for i in alive if due[i] > cutoff])
    assert len(idx) == 0 and idx.peek_due() is None


@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(0.0, 10.0)), max_size=40), st.floats(0.0, 10.0))
def test_delayed_ids_are_the_entries_not_yet_due(core: types.SimpleNamespace, entries: list[tuple[int, float]],
                                                now: float) -> None:
    """What the memory backend's stats() reads the scheduled and retry-pending jobs from."""
    idx = core.heap.PriorityIndex()
    for i, (priority, due) in enumerate(entries):
        idx.push(i, priority, due)
    assert sorted(idx.delayed_ids()) == [i for i, (_, due) in enumerate(entries) if due > 0.0]
    idx.promote(now)
    assert sorted(idx.delayed_ids()) == [i for i, (_, due) in enumerate(entries) if due > now]
    assert len(idx.delayed_ids()) == idx.delayed_count
    for i in idx.delayed_ids():
        idx.remove(i)
    assert idx.delayed_ids() == [] and idx.ready_count == len(idx)
