"""Retry backoff and the job state machine, run against both twins (``core.states``)."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.machinery
import math
import pickle
import types
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastjobs._core._errors import InvalidOptionError, InvalidTransition
from tests.conftest import import_compiled

KINDS = ("fixed", "linear", "exponential")
JITTERS = ("none", "full", "equal", "decorrelated")
NAMES = ("scheduled", "queued", "active", "succeeded", "retry_pending", "dead", "cancelled", "waiting")

# Written out by hand rather than derived from TRANSITIONS, so that a change
# to the table has to be made twice, on purpose.
# Columns: scheduled, queued, active, succeeded, retry_pending, dead, cancelled, waiting.
EXPECTED_TABLE = {
    "scheduled": (0, 1, 0, 0, 0, 0, 1, 0),
    "queued": (0, 0, 1, 0, 0, 0, 1, 0),
    "active": (0, 1, 0, 1, 1, 1, 1, 0),
    "succeeded": (0, 0, 0, 0, 0, 0, 0, 0),
    "retry_pending": (0, 1, 0, 0, 0, 0, 1, 0),
    "dead": (0, 1, 0, 0, 0, 0, 0, 0),
    "cancelled": (0, 0, 0, 0, 0, 0, 0, 0),
    "waiting": (1, 1, 0, 0, 0, 0, 1, 0),
}
EXPECTED_MOVES = {
    (src, dst)
    for src, name in enumerate(NAMES)
    for dst, allowed in enumerate(EXPECTED_TABLE[name])
    if allowed
}

# Known splitmix64 outputs for state 0 (the reference generator's first two
# values): pins the jitter stream, not just its self-consistency.
SPLITMIX64_SEED0 = (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4)


@st.composite
def backoff_args(
    draw: st.DrawFn, kind: str | None = None, jitter: str | None = None
) -> tuple[str, float, float, float, str]:
    """Valid ``(kind, base, factor, cap, jitter)``, including zero and subnormal values."""
    kind = kind or draw(st.sampled_from(KINDS))
    jitter = jitter or draw(st.sampled_from(JITTERS))
    # Exponential growth and decorrelated jitter only multiply base: it must be > 0.
    positive = kind == "exponential" or jitter == "decorrelated"
    base = draw(st.floats(min_value=0.0, max_value=1e4, exclude_min=positive))
    if kind == "exponential":
        factor = draw(st.floats(min_value=1.0, max_value=10.0))
    else:
        factor = draw(st.floats(min_value=0.0, max_value=1e3))
    cap = draw(st.floats(min_value=base, max_value=max(base, 1e6)))
    return (kind, base, factor, cap, jitter)


attempts = st.one_of(st.integers(min_value=1, max_value=64), st.integers(min_value=1, max_value=3000))
seeds = st.integers(min_value=-(2**80), max_value=2**80)


# -- states ------------------------------------------------------------------


def test_compiled_module_is_really_compiled(core: types.SimpleNamespace) -> None:
    if core.kind == "compiled":
        assert core.states.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), core.states.__file__
        assert core.states.__name__ == "fastjobs._core._states_c"
    else:
        assert core.states.__file__.endswith(".py")
        assert core.states.__name__ == "fastjobs._core._states_py"


def test_state_numbers_and_names(core: types.SimpleNamespace) -> None:
    s = core.states
    numbers = (s.SCHEDULED, s.QUEUED, s.ACTIVE, s.SUCCEEDED, s.RETRY_PENDING, s.DEAD, s.CANCELLED)
    assert numbers == (0, 1, 2, 3, 4, 5, 6)
    assert s.STATE_NAMES == NAMES
    for number, name in enumerate(NAMES):
        assert s.state_name(number) == name
        assert s.state_from_name(name) == number


@pytest.mark.parametrize("state", [-1, 8, 2**70, -(2**70)])
def test_state_name_rejects_unknown_numbers(core: types.SimpleNamespace, state: int) -> None:
    with pytest.raises(ValueError, match="unknown job state"):
        core.states.state_name(state)


@pytest.mark.parametrize("name", ["", "Queued", "running", "retry-pending", None, 1])
def test_state_from_name_rejects_unknown_names(core: types.SimpleNamespace, name: Any) -> None:
    with pytest.raises(ValueError, match="unknown job state name"):
        core.states.state_from_name(name)


def test_transition_table_is_exactly_the_expected_one(core: types.SimpleNamespace) -> None:
    s = core.states
    assert s.TRANSITIONS == frozenset(EXPECTED_MOVES)
    for src, name in enumerate(NAMES):
        for dst, allowed in enumerate(EXPECTED_TABLE[name]):
            assert s.can_transition(src, dst) is bool(allowed), (NAMES[src], NAMES[dst])
            if allowed:
                assert s.check_transition(src, dst) is None
            else:
                with pytest.raises(InvalidTransition):
                    s.check_transition(src, dst)


def test_terminal_states(core: types.SimpleNamespace) -> None:
    s = core.states
    assert s.TERMINAL == frozenset({s.SUCCEEDED, s.DEAD, s.CANCELLED})
    exits = {src: {dst for (a, dst) in s.TRANSITIONS if a == src} for src in s.TERMINAL}
    assert exits == {s.SUCCEEDED: set(), s.CANCELLED: set(), s.DEAD: {s.QUEUED}}


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        (3, 2, "cannot move a job from 'succeeded' to 'active'"),
        (6, 1, "cannot move a job from 'cancelled' to 'queued'"),
        (0, 2, "cannot move a job from 'scheduled' to 'active'"),
        (2, 2, "cannot move a job from 'active' to 'active'"),
        (5, 4, "cannot move a job from 'dead' to 'retry_pending'"),
    ],
)
def test_invalid_transition_message(core: types.SimpleNamespace, src: int, dst: int, message: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        core.states.check_transition(src, dst)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("src", "dst", "label"), [(9, 1, "9"), (2, -1, "-1"), (2**70, 1, str(2**70)), (1, -(2**70), str(-(2**70)))]
)
def test_unknown_state_numbers_are_invalid_transitions(
    core: types.SimpleNamespace, src: int, dst: int, label: str
) -> None:
    s = core.states
    assert s.can_transition(src, dst) is False
    with pytest.raises(InvalidTransition, match=f"{label} is not a job state"):
        s.check_transition(src, dst)


@pytest.mark.parametrize("bad", [1.0, "queued", None])
def test_states_must_be_integers(core: types.SimpleNamespace, bad: Any) -> None:
    s = core.states
    with pytest.raises(TypeError):
        s.can_transition(bad, s.ACTIVE)
    with pytest.raises(TypeError):
        s.check_transition(s.QUEUED, bad)


def test_bool_and_int_subclasses_count_as_their_value(core: types.SimpleNamespace) -> None:
    s = core.states
    assert s.can_transition(True, 2) is True  # True == QUEUED
    assert s.state_name(False) == "scheduled"


@pytest.mark.parametrize(("run_at", "now", "expected"), [(11.0, 10.0, 0), (10.0, 10.0, 1), (9, 10, 1), (0.0, -1.0, 0)])
def test_initial_state(core: types.SimpleNamespace, run_at: float, now: float, expected: int) -> None:
    assert core.states.initial_state(run_at, now) == expected


@settings(max_examples=200)
@given(data=st.data(), run_at=st.floats(0, 100), now=st.floats(0, 100))
def test_random_walks_only_take_legal_moves(
    core: types.SimpleNamespace, data: st.DataObject, run_at: float, now: float
) -> None:
    s = core.states
    state = s.initial_state(run_at, now)
    assert state in (s.SCHEDULED, s.QUEUED)
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        exits = [dst for dst in range(8) if s.can_transition(state, dst)]
        assert exits == [dst for dst in range(8) if (state, dst) in EXPECTED_MOVES]
        if state in s.TERMINAL:
            assert exits == ([s.QUEUED] if state == s.DEAD else [])
        # Any illegal move is refused and leaves nothing to undo.
        illegal = [dst for dst in range(8) if dst not in exits]
        if illegal:
            with pytest.raises(InvalidTransition):
                s.check_transition(state, data.draw(st.sampled_from(illegal), label="illegal"))
        if not exits:
            break
        dst = data.draw(st.sampled_from(exits), label="next")
        s.check_transition(state, dst)
        assert (state, dst) in s.TRANSITIONS
        state = dst


# -- backoff -----------------------------------------------------------------


def test_backoff_defaults_and_repr(core: types.SimpleNamespace) -> None:
    backoff = core.states.Backoff()
    assert (backoff.kind, backoff.base, backoff.factor, backoff.cap, backoff.jitter) == (
        "exponential", 1.0, 2.0, 3600.0, "full",
    )
    assert repr(backoff) == "Backoff(kind='exponential', base=1.0, factor=2.0, cap=3600.0, jitter='full')"
    assert all(type(value) is float for value in (backoff.base, backoff.factor, backoff.cap))


@pytest.mark.parametrize(
    ("kind", "base", "factor", "cap", "expected"),
    [
        ("fixed", 5.0, 0.0, 5.0, [5.0] * 6),
        ("fixed", 5.0, 9.0, 100.0, [5.0] * 6),
        ("linear", 1.0, 2.0, 10.0, [1.0, 3.0, 5.0, 7.0, 9.0, 10.0]),
        ("linear", 0.5, 0.0, 10.0, [0.5] * 6),
        ("exponential", 1.0, 2.0, 3600.0, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        ("exponential", 2.0, 3.0, 60.0, [2.0, 6.0, 18.0, 54.0, 60.0, 60.0]),
        ("exponential", 0.25, 1.0, 1.0, [0.25] * 6),
        ("exponential", 5e-324, 2.0, 1.0, [5e-324, 1e-323, 2e-323, 4e-323, 8e-323, 1.6e-322]),
    ],
)
def test_raw_formulas_without_jitter(
    core: types.SimpleNamespace, kind: str, base: float, factor: float, cap: float, expected: list[float]
) -> None:
    backoff = core.states.Backoff(kind, base, factor, cap, "none")
    assert [backoff.raw(attempt) for attempt in range(1, 7)] == expected
    assert [backoff.delay(attempt, seed=123) for attempt in range(1, 7)] == expected


@given(args=backoff_args(jitter="none"), attempt=st.integers(1, 200))
def test_raw_matches_the_closed_form(core: types.SimpleNamespace, args: tuple[Any, ...], attempt: int) -> None:
    kind, base, factor, cap, _ = args
    backoff = core.states.Backoff(*args)
    if kind == "fixed":
        expected = base
    elif kind == "linear":
        expected = base + factor * (attempt - 1)
    else:
        try:
            expected = base * factor ** (attempt - 1)
        except OverflowError:
            expected = math.inf
    # Exact for fixed and linear; exponential multiplies step by step, so it
    # may differ from ``**`` in the last bits, and by more in the subnormal range
    # (below 2.2e-308 s) where floats have fewer significant bits.
    tolerance = 1e-300
    if kind == "exponential":
        # Each product rounded in the subnormal range is off by up to 5e-324,
        # which the later factors then multiply.
        with contextlib.suppress(OverflowError):
            tolerance = max(tolerance, attempt * 5e-324 * factor ** (attempt - 1))
    assert backoff.raw(attempt) == pytest.approx(min(cap, expected), rel=1e-12, abs=tolerance)
    if kind != "exponential":
        assert backoff.raw(attempt) == min(cap, expected)


@given(args=backoff_args(), attempt=attempts, seed=seeds)
def test_delay_stays_within_bounds(
    core: types.SimpleNamespace, args: tuple[Any, ...], attempt: int, seed: int
) -> None:
    _, base, _, cap, jitter = args
    backoff = core.states.Backoff(*args)
    raw = backoff.raw(attempt)
    delay = backoff.delay(attempt, seed)
    assert 0.0 <= raw <= cap
    assert 0.0 <= delay <= cap
    if jitter == "none":
        assert delay == raw
    elif jitter == "full":
        assert 0.0 <= delay <= raw
    elif jitter == "equal":
        assert raw / 2 <= delay <= raw
    else:
        assert base <= delay <= cap


@given(args=backoff_args(), attempt=st.integers(1, 500))
def test_raw_is_monotone_and_capped(core: types.SimpleNamespace, args: tuple[Any, ...], attempt: int) -> None:
    backoff = core.states.Backoff(*args)
    assert backoff.raw(attempt) <= backoff.raw(attempt + 1) <= backoff.cap
    assert backoff.raw(1) == args[1]  # the first delay is base itself (cap >= base here)
    assert backoff.raw(attempt) == _reference_raw(*args[:4], attempt)


def _reference_raw(kind: str, base: float, factor: float, cap: float, attempt: int) -> float:
    """raw() from its documented formulas, written independently of both twins."""
    if kind == "fixed":
        value = base
    elif kind == "linear":
        value = base + factor * (attempt - 1)
    else:
        value = base
        for _ in range(attempt - 1):
            value *= factor
            if value > cap:
                break
    return min(value, cap)


@given(args=backoff_args(), attempt=attempts, seed=seeds)
def test_delay_is_reproducible_and_seed_is_taken_modulo_2_64(
    core: types.SimpleNamespace, args: tuple[Any, ...], attempt: int, seed: int
) -> None:
    backoff = core.states.Backoff(*args)
    delay = backoff.delay(attempt, seed)
    assert core.states.Backoff(*args).delay(attempt, seed) == delay
    assert backoff.delay(attempt, seed + 2**64) == delay
    assert backoff.delay(attempt, seed - 3 * 2**64) == delay


@given(
    jitter=st.sampled_from(["full", "equal", "decorrelated"]),
    attempt=st.integers(1, 8),
    seed_a=seeds,
    seed_b=seeds,
)
def test_different_seeds_give_different_delays(
    core: types.SimpleNamespace, jitter: str, attempt: int, seed_a: int, seed_b: int
) -> None:
    assume(seed_a % 2**64 != seed_b % 2**64)
    backoff = core.states.Backoff("exponential", 1.0, 2.0, 1e9, jitter)
    assert backoff.delay(attempt, seed_a) != backoff.delay(attempt, seed_b)


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_spreads_over_its_range(core: types.SimpleNamespace, jitter: str) -> None:
    backoff = core.states.Backoff("fixed", 10.0, 0.0, 100.0, jitter)
    delays = [backoff.delay(1, seed) for seed in range(2000)]
    assert len(set(delays)) == len(delays)
    low, high = {"full": (0.0, 10.0), "equal": (5.0, 10.0), "decorrelated": (10.0, 30.0)}[jitter]
    # Roughly uniform: each quarter of the range gets a fair share.
    width = (high - low) / 4
    counts = [sum(low + i * width <= d < low + (i + 1) * width for d in delays) for i in range(4)]
    assert min(counts) > 400, counts


def test_jitter_uses_the_splitmix64_stream(core: types.SimpleNamespace) -> None:
    backoff = core.states.Backoff("fixed", 1.0, 0.0, 1.0, "full")
    # attempt 1, seed 0 -> x = 0x9E3779B97F4A7C15, the reference's second output.
    assert backoff.delay(1, seed=0) == (SPLITMIX64_SEED0[1] >> 11) * 2.0**-53
    # seed -0x9E3779B97F4A7C15 (mod 2**64) moves the stream back one step.
    assert backoff.delay(1, seed=-0x9E3779B97F4A7C15) == (SPLITMIX64_SEED0[0] >> 11) * 2.0**-53
    equal = core.states.Backoff("fixed", 8.0, 0.0, 8.0, "equal")
    u = (SPLITMIX64_SEED0[1] >> 11) * 2.0**-53
    assert equal.delay(1, seed=0) == 8.0 / 2.0 + u * 8.0 / 2.0


def test_decorrelated_follows_its_recurrence(core: types.SimpleNamespace) -> None:
    backoff = core.states.Backoff("exponential", 2.0, 2.0, 50.0, "decorrelated")
    full = core.states.Backoff("fixed", 1.0, 0.0, 1.0, "full")  # delay(i) == u(i)
    seed = 987654321
    d = 2.0
    for attempt in range(1, 30):
        d = min(50.0, 2.0 + full.delay(attempt, seed) * (3.0 * d - 2.0))
        assert backoff.delay(attempt, seed) == d


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("jitter", JITTERS)
@pytest.mark.parametrize("attempt", [10_000, 10_001, 2**31, 2**62, 2**63 + 5, 10**30])
def test_huge_attempts_do_not_overflow(core: types.SimpleNamespace, kind: str, jitter: str, attempt: int) -> None:
    backoff = core.states.Backoff(kind, 1.5, 3.0, 600.0, jitter)
    raw = backoff.raw(attempt)
    assert raw == (1.5 if kind == "fixed" else 600.0)
    delay = backoff.delay(attempt, seed=attempt)
    assert 0.0 <= delay <= 600.0
    state, when = core.states.decide_retry(attempt, attempt + 1, 0.0, backoff, seed=attempt)
    assert state == core.states.RETRY_PENDING
    assert 0.0 <= when <= 600.0


def test_counts_past_the_clamp_behave_like_the_clamp(core: types.SimpleNamespace) -> None:
    # Documented: exponential and decorrelated stop iterating at attempt
    # 10,000; every count is clamped to 2**62.
    slow = core.states.Backoff("exponential", 1e-300, 1.0000001, 1e300, "decorrelated")
    assert slow.raw(10_000) == slow.raw(20_000) < slow.cap
    assert slow.delay(10_000, seed=1) == slow.delay(10**9, seed=1)
    linear = core.states.Backoff("linear", 0.0, 1e-300, 1.0, "full")
    assert linear.raw(2**62 + 1) == linear.raw(10**40) == 1e-300 * float(2**62 - 1)
    assert linear.delay(2**62, seed=5) == linear.delay(10**40, seed=5)


@pytest.mark.parametrize("attempt", [0, -1, -(2**70)])
def test_attempt_must_be_at_least_one(core: types.SimpleNamespace, attempt: int) -> None:
    backoff = core.states.Backoff()
    with pytest.raises(InvalidOptionError, match="attempt must be an integer >= 1"):
        backoff.raw(attempt)
    with pytest.raises(InvalidOptionError, match="attempt must be an integer >= 1"):
        backoff.delay(attempt, seed=1)


@pytest.mark.parametrize("bad", [1.5, "2", None])
def test_attempt_and_seed_must_be_integers(core: types.SimpleNamespace, bad: Any) -> None:
    backoff = core.states.Backoff()
    with pytest.raises(TypeError):
        backoff.raw(bad)
    with pytest.raises(TypeError):
        backoff.delay(2, seed=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "quadratic"}, "Backoff kind must be one of 'fixed', 'linear', 'exponential', got 'quadratic'"),
        ({"kind": None}, "Backoff kind must be one of"),
        ({"jitter": "half"}, "Backoff jitter must be one of 'none', 'full', 'equal', 'decorrelated', got 'half'"),
        ({"base": -1.0}, "Backoff base must be a finite number >= 0, got -1.0"),
        ({"base": 0.0}, "Backoff base must be a finite number > 0 for exponential backoff, got 0.0"),
        ({"base": -0.0, "kind": "exponential"}, "Backoff base must be a finite number > 0 for exponential"),
        ({"base": 0, "kind": "linear", "jitter": "decorrelated"},
         "Backoff base must be a finite number > 0 for decorrelated jitter, got 0"),
        ({"base": math.nan}, "Backoff base must be a finite number >= 0, got nan"),
        ({"base": math.inf, "cap": math.inf}, "Backoff base must be a finite number >= 0, got inf"),
        ({"base": "1"}, "Backoff base must be a finite number >= 0, got '1'"),
        ({"base": True}, "Backoff base must be a finite number >= 0, got True"),
        ({"base": 10**400}, "Backoff base must be a finite number >= 0"),
        ({"factor": 0.5}, "Backoff factor must be a finite number >= 1 for exponential backoff, got 0.5"),
        ({"kind": "linear", "factor": -0.1}, "Backoff factor must be a finite number >= 0, got -0.1"),
        ({"factor": math.inf}, "Backoff factor must be a finite number >= 1 for exponential backoff, got inf"),
        ({"base": 10.0, "cap": 5.0}, r"Backoff cap must be a finite number >= base \(10.0\), got 5.0"),
        ({"cap": math.inf}, r"Backoff cap must be a finite number >= base \(1.0\), got inf"),
        ({"cap": None}, "Backoff cap must be a finite number"),
    ],
)
def test_backoff_validation(core: types.SimpleNamespace, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        core.states.Backoff(**kwargs)


def test_backoff_accepts_ints_and_normalises_negative_zero(core: types.SimpleNamespace) -> None:
    backoff = core.states.Backoff("linear", 0, 3, 10, "none")
    assert backoff.to_spec() == ("linear", 0.0, 3.0, 10.0, "none")
    assert all(type(value) is float for value in backoff.to_spec()[1:4])
    zero = core.states.Backoff("fixed", -0.0, -0.0, -0.0, "none")
    assert math.copysign(1.0, zero.base) == 1.0
    assert repr(zero) == "Backoff(kind='fixed', base=0.0, factor=0.0, cap=0.0, jitter='none')"


def test_convenience_constructors(core: types.SimpleNamespace) -> None:
    s = core.states
    assert s.Fixed(30).to_spec() == ("fixed", 30.0, 0.0, 30.0, "none")
    assert s.Fixed(7200.0, jitter="full") == s.Backoff("fixed", 7200.0, 0.0, 7200.0, "full")
    assert s.Linear() == s.Backoff("linear", 1.0, 1.0, 3600.0, "none")
    assert s.Linear(base=2.0, step=0.5, cap=4.0).raw(3) == 3.0
    assert s.Exponential() == s.Backoff()
    assert s.Exponential(base=0.5, factor=3.0, cap=10.0, jitter="none").raw(3) == 4.5
    with pytest.raises(InvalidOptionError, match="Fixed delay must be a finite number >= 0"):
        s.Fixed(-5.0)
    with pytest.raises(InvalidOptionError, match="Linear step must be a finite number >= 0"):
        s.Linear(step=-1.0)


@given(args=backoff_args())
def test_spec_round_trip(core: types.SimpleNamespace, args: tuple[Any, ...]) -> None:
    Backoff = core.states.Backoff
    backoff = Backoff(*args)
    spec = backoff.to_spec()
    assert spec == args
    assert Backoff.from_spec(spec) == backoff
    assert Backoff.from_spec(list(spec)) == backoff
    assert hash(Backoff.from_spec(spec)) == hash(backoff)
    assert pickle.loads(pickle.dumps(backoff)) == backoff
    assert eval(repr(backoff), {"Backoff": Backoff, "inf": math.inf}) == backoff


@pytest.mark.parametrize(
    "spec",
    [
        None,
        "exponential",
        ("exponential", 1.0, 2.0, 3600.0),
        ("exponential", 1.0, 2.0, 3600.0, "full", "extra"),
        {"kind": "fixed"},
        ("exponential", 1.0, 0.5, 3600.0, "full"),
        ("fixed", "1", 0.0, 1.0, "none"),
        ("fixed", 1.0, 0.0, 1.0, None),
    ],
)
def test_from_spec_rejects_bad_specs(core: types.SimpleNamespace, spec: Any) -> None:
    with pytest.raises(InvalidOptionError):
        core.states.Backoff.from_spec(spec)


def test_backoff_equality_hash_and_immutability(core: types.SimpleNamespace) -> None:
    Backoff = core.states.Backoff
    a = Backoff("linear", 1.0, 2.0, 10.0, "equal")
    assert a == Backoff("linear", 1, 2, 10, "equal")
    assert not a != Backoff("linear", 1.0, 2.0, 10.0, "equal")
    assert a != Backoff("linear", 1.0, 2.0, 10.0, "full")
    assert a != ("linear", 1.0, 2.0, 10.0, "equal")
    assert len({a, Backoff("linear", 1.0, 2.0, 10.0, "equal"), Backoff()}) == 2
    for name in ("kind", "base", "factor", "cap", "jitter"):
        with pytest.raises(AttributeError):
            setattr(a, name, getattr(a, name))
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("MyBackoff", (Backoff,), {})


# -- decide_retry ------------------------------------------------------------


def test_decide_retry_schedules_the_next_attempt(core: types.SimpleNamespace) -> None:
    s = core.states
    backoff = s.Exponential(base=1.0, factor=2.0, cap=60.0, jitter="none")
    assert s.decide_retry(1, 5, 1000.0, backoff) == (s.RETRY_PENDING, 1001.0)
    assert s.decide_retry(4, 5, 1000.0, backoff) == (s.RETRY_PENDING, 1008.0)
    jittered = s.Exponential(base=1.0, factor=2.0, cap=60.0, jitter="full")
    state, when = s.decide_retry(3, 5, 1000.0, jittered, seed=77)
    assert state == s.RETRY_PENDING
    assert when == 1000.0 + jittered.delay(3, seed=77)
    assert s.decide_retry(3, 5, 1000, jittered, 77, True) == (state, when)


def test_decide_retry_dead_when_not_retryable_or_out_of_attempts(core: types.SimpleNamespace) -> None:
    s = core.states
    backoff = s.Fixed(5.0)
    assert s.decide_retry(1, 5, 100.0, backoff, retryable=False) == (s.DEAD, 100.0)
    assert s.decide_retry(5, 5, 100.0, backoff) == (s.DEAD, 100.0)
    assert s.decide_retry(6, 5, 100.0, backoff) == (s.DEAD, 100.0)
    assert s.decide_retry(1, 1, 100.0, None) == (s.DEAD, 100.0)
    assert s.decide_retry(1, 5, 100.0, None, retryable=0) == (s.DEAD, 100.0)


def test_decide_retry_without_backoff_retries_now(core: types.SimpleNamespace) -> None:
    s = core.states
    assert s.decide_retry(1, 3, 42.5, None) == (s.RETRY_PENDING, 42.5)
    state, when = s.decide_retry(2, 3, 42, None, seed=-1)
    assert (state, when) == (s.RETRY_PENDING, 42.0)
    assert type(when) is float
    assert type(s.decide_retry(3, 3, 42, None)[1]) is float


def test_decide_retry_validation(core: types.SimpleNamespace) -> None:
    s = core.states
    with pytest.raises(InvalidOptionError, match="attempt must be an integer >= 1, got 0"):
        s.decide_retry(0, 5, 1.0, None)
    with pytest.raises(InvalidOptionError, match="max_attempts must be an integer >= 1, got 0"):
        s.decide_retry(1, 0, 1.0, None)
    with pytest.raises(TypeError, match="backoff must be a"):
        s.decide_retry(1, 5, 1.0, ("fixed", 1.0, 0.0, 1.0, "none"))
    with pytest.raises(TypeError):
        s.decide_retry(1, 5, "now", None)
    with pytest.raises(TypeError):
        s.decide_retry(1, 5, 1.0, s.Fixed(1.0), seed=1.5)


def test_examples_in_docstrings(core: types.SimpleNamespace) -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(core.states, core.states.__name__)
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= 15
    assert results.failed == 0


# -- the twins agree -----------------------------------------------------------


@pytest.fixture(scope="module")
def twins() -> tuple[types.ModuleType, types.ModuleType]:
    pure = importlib.import_module("fastjobs._core._states_py")
    return import_compiled("states"), pure


def _backoff_args_wide() -> st.SearchStrategy[tuple[str, float, float, float, str]]:
    # Wider than backoff_args: tiny, huge and subnormal values too.
    any_float = st.floats(min_value=0.0, max_value=1e300)
    positive = st.floats(min_value=0.0, max_value=1e300, exclude_min=True)
    return st.one_of(backoff_args(), st.tuples(
        st.sampled_from(KINDS), positive, st.floats(1.0, 1e10), any_float, st.sampled_from(JITTERS)
    ).map(lambda t: (t[0], t[1], t[2], max(t[1], t[3]), t[4])))


@settings(max_examples=500, deadline=None)
@given(
    args=_backoff_args_wide(),
    attempt=st.one_of(attempts, st.integers(1, 2**70)),
    seed=seeds,
    now=st.floats(min_value=-1e12, max_value=1e12),
    max_attempts=st.integers(1, 3001),
)
def test_twins_give_bit_identical_results(
    twins: tuple[types.ModuleType, types.ModuleType],
    args: tuple[Any, ...],
    attempt: int,
    seed: int,
    now: float,
    max_attempts: int,
) -> None:
    compiled, pure = twins
    c, p = compiled.Backoff(*args), pure.Backoff(*args)
    assert c.to_spec() == p.to_spec()
    assert repr(c) == repr(p)
    assert hash(c) == hash(p)
    assert c.raw(attempt).hex() == p.raw(attempt).hex()
    assert c.delay(attempt, seed).hex() == p.delay(attempt, seed).hex()
    c_state, c_when = compiled.decide_retry(attempt, max_attempts, now, c, seed)
    p_state, p_when = pure.decide_retry(attempt, max_attempts, now, p, seed)
    assert (c_state, c_when.hex()) == (p_state, p_when.hex())


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.Backoff("cubic"),
        lambda m: m.Backoff(base=-1),
        lambda m: m.Backoff(base=0),
        lambda m: m.Exponential(base=0.0),
        lambda m: m.Fixed(0.0, jitter="decorrelated"),
        lambda m: m.Backoff.from_spec(("exponential", 0.0, 2.0, 60.0, "none")),
        lambda m: m.Backoff(cap=0.5),
        lambda m: m.Backoff(factor=0.9),
        lambda m: m.Backoff.from_spec((1, 2)),
        lambda m: m.Fixed(-1),
        lambda m: m.Linear(step="x"),
        lambda m: m.Backoff().raw(0),
        lambda m: m.Backoff().raw(1.0),
        lambda m: m.Backoff().delay(1, seed="x"),
        lambda m: m.decide_retry(0, 1, 0.0, None),
        lambda m: m.decide_retry(1, -3, 0.0, None),
        lambda m: m.decide_retry(1, 2, 0.0, "backoff"),
        lambda m: m.decide_retry(1, 2, "soon", None),
        lambda m: m.check_transition(3, 2),
        lambda m: m.check_transition(3, 99),
        lambda m: m.check_transition(-5, 99),
        lambda m: m.check_transition(1.0, 2),
        lambda m: m.can_transition(1, "x"),
        lambda m: m.state_name(8),
        lambda m: m.state_from_name("running"),
        lambda m: m.initial_state(None, 1.0),
    ],
)
def test_twins_raise_the_same_errors(
    twins: tuple[types.ModuleType, types.ModuleType], call: Any
) -> None:
    raised = []
    for module in twins:
        with pytest.raises(Exception) as info:
            call(module)
        raised.append((type(info.value), str(info.value).replace("_states_c", "_states_py")))
    assert raised[0] == raised[1]


def test_twins_do_not_mix(twins: tuple[types.ModuleType, types.ModuleType]) -> None:
    compiled, pure = twins
    with pytest.raises(TypeError, match=r"_states_py\.Backoff"):
        compiled.decide_retry(1, 3, 0.0, pure.Backoff())
    with pytest.raises(TypeError, match=r"_states_c\.Backoff"):
        pure.decide_retry(1, 3, 0.0, compiled.Backoff())
