"""Enqueue's per-job core (``_enqueue_c`` and its twin ``_enqueue_py``): job ids are 32 hex
digits, time-ordered and distinct across batches and threads; ``new_jobs`` gives, call for
call, what ``Call.to_new_job`` gives, and raises what it raises."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import types
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import fastjobs
from fastjobs import PayloadTooLargeError, TaskArgumentsError, UnencodableError
from fastjobs.backends.values import NewJob
from fastjobs.constants import BATCH, PIPE
from tests.conftest import import_compiled


@pytest.fixture(params=["compiled", "pure"], scope="module")
def enqueue(request: pytest.FixtureRequest) -> types.ModuleType:
    if request.param == "compiled":
        return import_compiled("enqueue")
    import fastjobs._core._enqueue_py as pure

    return pure


def test_ids_are_32_hex_digits_with_a_time_head_and_a_running_counter(enqueue: types.ModuleType) -> None:
    before = int(time.time() * 1000)
    ids = enqueue.new_job_ids(500)
    after = int(time.time() * 1000)
    assert len(ids) == len(set(ids)) == 500
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    assert len({i[:20] for i in ids}) == 1  # one time + random head per batch
    assert before <= int(ids[0][:12], 16) <= after
    counters = [int(i[20:], 16) for i in ids]
    assert counters == [(counters[0] + k) % 2**48 for k in range(500)]
    assert enqueue.new_job_ids(0) == []


def test_ids_of_later_batches_sort_after_and_differ(enqueue: types.ModuleType) -> None:
    first = enqueue.new_job_ids(3)
    time.sleep(0.002)
    second = enqueue.new_job_ids(3)
    assert max(first) < min(second)
    assert not set(first) & set(second)


def test_threads_enqueueing_at_once_get_distinct_ids(enqueue: types.ModuleType) -> None:
    got: list[list[str]] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        mine = []
        for _ in range(200):
            mine += enqueue.new_job_ids(50)
        got.append(mine)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in got for i in ids]
    assert len(every) == len(set(every)) == 4 * 200 * 50


# -- new_jobs ------------------------------------------------------------------------

app = fastjobs.App("memory://", prefix="enqueuecore")


class Size(enum.Enum):
    S = "s"
    M = "m"


@dataclasses.dataclass
class Shirt:
    size: Size


@app.task(name="noop", queue="q")
async def noop() -> None:
    return None


@app.task(name="add", queue="math", priority=3, max_attempts=7)
def add(x: int, y: int = 0) -> int:
    return x + y


@app.task(name="many", limit=fastjobs.Limit(concurrency=2))
def many(*values: Any) -> None:
    return None


@app.task(name="keyed")
def keyed(*, tenant: str) -> None:
    return None


@app.task(name="typed")
def typed(shirt: Shirt) -> None:
    return None


def _calls() -> st.SearchStrategy[Any]:
    values = st.one_of(st.integers(-2**70, 2**70), st.text(max_size=20), st.none(), st.floats(allow_nan=False),
                       st.binary(max_size=20), st.lists(st.integers(), max_size=3))
    plain = st.one_of(
        st.just(noop.call()).map(lambda _: noop.call()),
        st.lists(values, max_size=3).map(lambda a: add.call(*a)),  # 0 or 3 arguments: the full check
        st.lists(values, max_size=5).map(lambda a: many.call(*a)),
        values.map(lambda v: add.call(1, y=v)),
        st.text(max_size=5).map(lambda t: keyed.call(tenant=t)),
        st.sampled_from(Size).map(lambda s: typed.call(Shirt(s))),
    )
    configured = st.builds(
        lambda task_args, delay, own, unique, tags, meta, prio: task_args[0].options(
            delay=delay, job_id=own, unique_key=unique, tags=tags, meta=meta, priority=prio).call(*task_args[1]),
        st.sampled_from([(noop, ()), (add, (1,)), (add, (1, 2)), (many, (1, "x"))]),
        st.sampled_from([0.0, 0, 1.5, 30]),
        st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)),
        st.one_of(st.none(), st.text("abc", min_size=1, max_size=4)),
        st.lists(st.sampled_from(["red", "blue"]), max_size=2, unique=True),
        st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-1000, 1000), max_size=2)),
        st.sampled_from([0, 5]),
    )
    # Meta on a call of the task's own options (as an enqueue hook leaves it: a trace context):
    # the compiled loop encodes it; fastjobs' own keys (a chain's pipe, a batch) send the call
    # through to_new_job, whose checks and body they change.
    hooked = st.builds(
        lambda task_args, meta: dataclasses.replace(task_args[0].call(*task_args[1]), meta=meta),
        st.sampled_from([(noop, ()), (add, (1,)), (add, (1, 2)), (many, (1, "x"))]),
        st.one_of(st.none(), st.dictionaries(st.sampled_from(["traceparent", "tenant", PIPE, BATCH]),
                                             st.one_of(st.integers(-1000, 1000), st.text(max_size=8)), max_size=3)),
    )
    return st.one_of(plain, configured, hooked)


def _outcome(make: Any) -> Any:
    try:
        return make()
    except (UnencodableError, PayloadTooLargeError, TaskArgumentsError) as exc:
        return type(exc), str(exc)


@settings(max_examples=300)
@given(calls=st.lists(_calls(), max_size=12), max_size=st.sampled_from([64, 1 << 20]))
def test_new_jobs_gives_what_to_new_job_gives(enqueue: types.ModuleType, calls: list[Any], max_size: int) -> None:
    ids = [f"{n:032x}" for n in range(len(calls))]
    now = 1_700_000_000.25
    expected = _outcome(lambda: [c.to_new_job(max_size, i, now) for c, i in zip(calls, ids)])
    got = _outcome(lambda: enqueue.new_jobs(calls, ids, now, max_size, NewJob))
    assert got == expected
    if isinstance(got, list):
        assert all(type(job) is NewJob for job in got)


def test_new_jobs_takes_a_new_template_and_other_options_within_one_batch(enqueue: types.ModuleType) -> None:
    fresh = fastjobs.App("memory://", prefix="enqueuecore2")

    @fresh.task(name="t")
    async def t(x: int) -> None:
        return None

    other = t.options(priority=9)
    calls = [t.call(1), t.call(2), other.call(3), t.call(4), other.call(5), t.options(queue="z").call(6)]
    ids = enqueue.new_job_ids(len(calls))
    jobs = enqueue.new_jobs(calls, ids, 5.0, 1 << 20, NewJob)
    assert [(j.id, j.queue, j.priority) for j in jobs] == [
        (ids[0], "default", 0), (ids[1], "default", 0), (ids[2], "default", 9), (ids[3], "default", 0),
        (ids[4], "default", 9), (ids[5], "z", 0)]
    assert jobs == [c.to_new_job(1 << 20, i, 5.0) for c, i in zip(calls, ids)]


def test_new_jobs_with_a_call_of_another_class(enqueue: types.ModuleType) -> None:
    class Pending:  # no slots: read through to_new_job
        def __init__(self, call: Any) -> None:
            self.call = call

        def to_new_job(self, max_size: int, job_id: str, now: float) -> Any:
            return self.call.to_new_job(max_size, job_id, now)

    calls = [Pending(noop.call()), noop.call(), Pending(add.call(2))]
    ids = ["a" * 32, "b" * 32, "c" * 32]
    assert enqueue.new_jobs(calls, ids, 1.0, 1 << 20, NewJob) == [
        c.to_new_job(1 << 20, i, 1.0) for c, i in zip(calls, ids)]


def test_new_jobs_encodes_a_hooks_meta_and_leaves_fastjobs_own_keys_to_to_new_job(enqueue: types.ModuleType) -> None:
    """A trace context is encoded as to_new_job encodes it; a chain step's pipe (one argument
    more to come) and a batch callback's key (no parents in its body) change the call, so
    those calls get to_new_job's answer, error or body."""
    now, ids = 1_700_000_000.5, [f"{n:032x}" for n in range(3)]
    add.call(1, 2).to_new_job(1 << 20, ids[0], now)  # the task's template exists: the compiled loop may serve it
    traced = [dataclasses.replace(add.call(1, 2), meta={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}),
              dataclasses.replace(add.call(3), meta={BATCH: "b1"}, depends_on=("p1", "p2")),
              dataclasses.replace(add.call(4), meta={PIPE: True})]
    expected = [c.to_new_job(1 << 20, i, now) for c, i in zip(traced, ids)]
    assert enqueue.new_jobs(traced, ids, now, 1 << 20, NewJob) == expected
    piped_full = dataclasses.replace(add.call(1, 2), meta={PIPE: True})  # with the piped value, three: too many
    with pytest.raises(TaskArgumentsError, match="at most 2 positional"):
        piped_full.to_new_job(1 << 20, ids[0], now)
    with pytest.raises(TaskArgumentsError, match="at most 2 positional"):
        enqueue.new_jobs([piped_full], ids[:1], now, 1 << 20, NewJob)
