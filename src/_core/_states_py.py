"""Retry backoff and the job state machine: the pure-Python twin of ``_states_c``.

This module is the reference: ``_states_c`` must behave identically, down to
the last bit of every float it returns, so that a job's retry time does not
depend on whether the extension was built. Both compute each float with the
same operations in the same order and draw jitter from the same splitmix64
stream, so a delay is a pure function of ``(backoff, attempt, seed)``.

Examples below use this module's names directly; ``Backoff``,
``decide_retry``, ``check_transition``, ``can_transition`` and the state
constants are also re-exported by ``fastjobs._core``.

Example:
    >>> backoff = Exponential(base=1.0, factor=2.0, cap=60.0, jitter="none")
    >>> check_transition(ACTIVE, RETRY_PENDING)
    >>> decide_retry(3, 5, now=1000.0, backoff=backoff) == (RETRY_PENDING, 1004.0)
    True
"""

from __future__ import annotations

import operator
from typing import Final, final

from ._errors import InvalidOptionError
from ._states_rules import _JITTERS, _KINDS, ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED
from ._states_rules import STATE_NAMES, SUCCEEDED, TERMINAL, TRANSITIONS, WAITING, _choice, _option
from ._states_rules import _transition_error, state_from_name

# TRANSITIONS stays the one table; this is only a faster view of it.
_ALLOWED: Final[tuple[tuple[bool, ...], ...]] = tuple(
    tuple((src, dst) in TRANSITIONS for dst in range(len(STATE_NAMES)))
    for src in range(len(STATE_NAMES))
)

# Attempt counts are clamped here so that both twins can hold them in a C
# int64; no job gets anywhere near it.
_MAX_COUNT: Final = 2**62
# Exponential backoff and decorrelated jitter iterate once per attempt. Past
# this many attempts they behave as at this attempt, which bounds the work of
# one call; no real backoff gets there uncapped (a factor of 2 takes any base
# past the largest float within 2,100 steps).
_MAX_STEPS: Final = 10_000

_MASK64: Final = 0xFFFFFFFFFFFFFFFF
_GOLDEN: Final = 0x9E3779B97F4A7C15
_MIX1: Final = 0xBF58476D1CE4E5B9
_MIX2: Final = 0x94D049BB133111EB
_UNIT: Final = 2.0**-53

_FIXED: Final = 0
_LINEAR: Final = 1
_EXPONENTIAL: Final = 2

_NONE: Final = 0
_FULL: Final = 1
_EQUAL: Final = 2
_DECORRELATED: Final = 3


def _as_double(value: object) -> float:
    # Mirrors how the compiled twin converts an argument typed ``double``
    # (PyFloat_AsDouble): float(), unlike it, would also parse strings.
    if type(value) is float:
        return value
    if isinstance(value, float):
        return float.__float__(value)
    cls = type(value)
    if hasattr(cls, "__float__") or hasattr(cls, "__index__"):
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"must be real number, not {cls.__name__}")


def _count(value: int, name: str) -> int:
    number = operator.index(value)
    if number < 1:
        raise InvalidOptionError(f"{name} must be an integer >= 1, got {value!r}")
    return number if number < _MAX_COUNT else _MAX_COUNT


def _uniform(seed: int, i: int) -> float:
    # splitmix64: item i of the stream starting at seed. A counter-based
    # generator lets any attempt's jitter be recomputed without the ones before.
    x = (seed + i * _GOLDEN) & _MASK64
    z = (x + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    z ^= z >> 31
    return (z >> 11) * _UNIT


def _state_index(state: int) -> int:
    index = operator.index(state)
    return index if 0 <= index < 8 else -1


def state_name(state: int) -> str:
    """Return the name of a job state.

    Example:
        >>> state_name(RETRY_PENDING)
        'retry_pending'
    """
    index = _state_index(state)
    if index < 0:
        raise ValueError(f"unknown job state {state!r}; job states are 0..6")
    return STATE_NAMES[index]


def can_transition(src: int, dst: int) -> bool:
    """Tell whether a job may move from state ``src`` to state ``dst``.

    Unknown state numbers are never allowed; non-integers raise TypeError.

    Example:
        >>> can_transition(QUEUED, ACTIVE), can_transition(SUCCEEDED, ACTIVE)
        (True, False)
    """
    s = _state_index(src)
    d = _state_index(dst)
    return s >= 0 and d >= 0 and _ALLOWED[s][d]


def check_transition(src: int, dst: int) -> None:
    """Raise InvalidTransition unless a job may move from ``src`` to ``dst``.

    Example:
        >>> check_transition(SUCCEEDED, ACTIVE)
        Traceback (most recent call last):
        ...
        fastjobs._core._errors.InvalidTransition: cannot move a job from 'succeeded' to 'active'
    """
    s = _state_index(src)
    d = _state_index(dst)
    if s >= 0 and d >= 0 and _ALLOWED[s][d]:
        return
    raise _transition_error(src, dst)


def initial_state(run_at: float, now: float) -> int:
    """Return the state a new job starts in: SCHEDULED if it runs later, else QUEUED.

    Example:
        >>> initial_state(run_at=110.0, now=100.0) == SCHEDULED
        True
    """
    due = _as_double(run_at)
    current = _as_double(now)
    return SCHEDULED if due > current else QUEUED


@final
class Backoff:
    """How long to wait before the next attempt: fixed, linear or exponential, capped, with optional jitter.

    ``raw(attempt)`` is the delay after failed attempt ``attempt`` (1-based)
    without jitter, never above ``cap``:

    * ``"fixed"``: ``base``;
    * ``"linear"``: ``base + factor * (attempt - 1)``;
    * ``"exponential"``: ``base * factor ** (attempt - 1)``, computed by
      repeated multiplication (attempts past 10,000 count as 10,000).

    ``delay(attempt, seed)`` applies the jitter, drawing from a splitmix64
    stream keyed by ``seed`` (use the job id), so it is reproducible:

    * ``"none"``: ``raw``;
    * ``"full"``: uniform in ``[0, raw)``;
    * ``"equal"``: uniform in ``[raw / 2, raw)``;
    * ``"decorrelated"`` (AWS): ``d = min(cap, base + u * (3 * d_prev - base))``
      iterated from ``d = base``, ignoring ``kind`` and ``factor``; stays
      within ``[base, cap]`` (attempts past 10,000 count as 10,000).

    Args:
        kind: "fixed", "linear" or "exponential".
        base: the first delay in seconds, >= 0 (> 0 for exponential or decorrelated).
        factor: linear step or exponential growth factor, >= 0 (>= 1 for exponential).
        cap: the longest delay in seconds, >= base.
        jitter: "none", "full", "equal" or "decorrelated".

    Example:
        >>> backoff = Backoff("exponential", base=2.0, factor=3.0, cap=60.0, jitter="none")
        >>> [backoff.raw(attempt) for attempt in (1, 2, 3, 4, 5)]
        [2.0, 6.0, 18.0, 54.0, 60.0]
        >>> jittered = Backoff(jitter="full")
        >>> jittered.delay(3, seed=42) == jittered.delay(3, seed=42) <= jittered.raw(3)
        True
    """

    __slots__ = ("_kind", "_base", "_factor", "_cap", "_jitter", "_kind_code", "_jitter_code")

    def __init_subclass__(cls, **kwargs: object) -> None:
        # The compiled Backoff is a final extension type; keep the twins alike.
        raise TypeError(f"type '{__name__}.Backoff' is not an acceptable base type")

    def __init__(
        self,
        kind: str = "exponential",
        base: float = 1.0,
        factor: float = 2.0,
        cap: float = 3600.0,
        jitter: str = "full",
    ) -> None:
        kind_code = _choice(kind, "Backoff kind", _KINDS)
        jitter_code = _choice(jitter, "Backoff jitter", _JITTERS)
        base_ = _option(base, "Backoff base", 0.0, ">= 0")
        if base_ == 0.0 and (kind_code == _EXPONENTIAL or jitter_code == _DECORRELATED):
            # Both only ever multiply base: from 0 every retry would be immediate.
            reason = "exponential backoff" if kind_code == _EXPONENTIAL else "decorrelated jitter"
            raise InvalidOptionError(
                f"Backoff base must be a finite number > 0 for {reason}, got {base!r}"
            )
        if kind_code == _EXPONENTIAL:
            factor_ = _option(factor, "Backoff factor", 1.0, ">= 1 for exponential backoff")
        else:
            factor_ = _option(factor, "Backoff factor", 0.0, ">= 0")
        cap_ = _option(cap, "Backoff cap", base_, f">= base ({base_!r})")
        self._kind = _KINDS[kind_code]
        self._jitter = _JITTERS[jitter_code]
        self._kind_code = kind_code
        self._jitter_code = jitter_code
        self._base = base_
        self._factor = factor_
        self._cap = cap_

    @property
    def kind(self) -> str:
        """"fixed", "linear" or "exponential"."""
        return self._kind

    @property
    def base(self) -> float:
        """The first delay, in seconds."""
        return self._base

    @property
    def factor(self) -> float:
        """The linear step or the exponential growth factor."""
        return self._factor

    @property
    def cap(self) -> float:
        """The longest delay, in seconds."""
        return self._cap

    @property
    def jitter(self) -> str:
        """"none", "full", "equal" or "decorrelated"."""
        return self._jitter

    def raw(self, attempt: int) -> float:
        """Return the delay after failed attempt ``attempt`` (>= 1), before jitter.

        Example:
            >>> Linear(base=5.0, step=10.0, cap=30.0).raw(3)
            25.0
        """
        return self._raw(_count(attempt, "attempt"))

    def delay(self, attempt: int, seed: int = 0) -> float:
        """Return the jittered delay after failed attempt ``attempt``; the same seed gives the same delay.

        ``seed`` may be any int (it is reduced modulo 2**64).

        Example:
            >>> backoff = Exponential(base=1.0, cap=60.0, jitter="equal")
            >>> 2.0 <= backoff.delay(3, seed=7) <= 4.0
            True
        """
        number = _count(attempt, "attempt")
        return self._delay(number, operator.index(seed) & _MASK64)

    def _raw(self, attempt: int) -> float:
        cap = self._cap
        value = self._base
        if self._kind_code == _LINEAR:
            value = value + self._factor * float(attempt - 1)
        elif self._kind_code == _EXPONENTIAL and value != 0.0 and self._factor != 1.0:
            # Repeated multiplication, not ``**``: C's pow() and Python's may
            # round differently, and a product of factors >= 1 never
            # decreases, so raw() is monotone in the attempt.
            factor = self._factor
            for _ in range(min(attempt, _MAX_STEPS) - 1):
                value = value * factor
                if value > cap:
                    return cap
        return cap if value > cap else value

    def _delay(self, attempt: int, seed: int) -> float:
        jitter = self._jitter_code
        if jitter == _DECORRELATED:
            base = self._base
            cap = self._cap
            value = base
            for i in range(1, min(attempt, _MAX_STEPS) + 1):
                value = base + _uniform(seed, i) * (3.0 * value - base)
                if value > cap:
                    value = cap
            return value
        raw = self._raw(attempt)
        if jitter == _NONE:
            return raw
        u = _uniform(seed, attempt)
        if jitter == _FULL:
            return u * raw
        return raw / 2.0 + u * raw / 2.0

    def to_spec(self) -> tuple[str, float, float, float, str]:
        """Return ``(kind, base, factor, cap, jitter)``, the form the job codec stores.

        Example:
            >>> Fixed(30.0).to_spec()
            ('fixed', 30.0, 0.0, 30.0, 'none')
        """
        return (self._kind, self._base, self._factor, self._cap, self._jitter)

    @classmethod
    def from_spec(cls, spec: object) -> Backoff:
        """Rebuild a Backoff from ``to_spec()``'s tuple (or a list, as msgpack returns it).

        Example:
            >>> Backoff.from_spec(["linear", 1.0, 2.0, 10.0, "none"]).raw(2)
            3.0
        """
        if not isinstance(spec, (tuple, list)) or len(spec) != 5:
            raise InvalidOptionError(
                f"a Backoff spec must be a (kind, base, factor, cap, jitter) sequence, got {spec!r}"
            )
        kind, base, factor, cap, jitter = spec
        return cls(kind, base, factor, cap, jitter)

    def __reduce__(self) -> tuple[type[Backoff], tuple[str, float, float, float, str]]:
        return (Backoff, self.to_spec())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backoff):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(self.to_spec())

    def __repr__(self) -> str:
        return (
            f"Backoff(kind={self._kind!r}, base={self._base!r}, factor={self._factor!r}, "
            f"cap={self._cap!r}, jitter={self._jitter!r})"
        )


def Fixed(delay: float, jitter: str = "none") -> Backoff:  # noqa: N802 - reads as a kind of Backoff
    """Return a Backoff that always waits ``delay`` seconds (before jitter).

    Example:
        >>> Fixed(30.0).delay(7)
        30.0
    """
    seconds = _option(delay, "Fixed delay", 0.0, ">= 0")
    return Backoff("fixed", seconds, 0.0, seconds, jitter)


def Linear(  # noqa: N802
    base: float = 1.0, step: float = 1.0, cap: float = 3600.0, jitter: str = "none"
) -> Backoff:
    """Return a Backoff that waits ``base``, then ``step`` seconds longer after each failure.

    Example:
        >>> [Linear(base=1.0, step=2.0).raw(attempt) for attempt in (1, 2, 3)]
        [1.0, 3.0, 5.0]
    """
    step_ = _option(step, "Linear step", 0.0, ">= 0")
    return Backoff("linear", base, step_, cap, jitter)


def Exponential(  # noqa: N802
    base: float = 1.0, factor: float = 2.0, cap: float = 3600.0, jitter: str = "full"
) -> Backoff:
    """Return a Backoff that waits ``base``, then ``factor`` times longer after each failure.

    Example:
        >>> [Exponential(jitter="none").raw(attempt) for attempt in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 8.0]
    """
    return Backoff("exponential", base, factor, cap, jitter)


def decide_retry(
    attempt: int,
    max_attempts: int,
    now: float,
    backoff: Backoff | None,
    seed: int = 0,
    retryable: bool = True,
) -> tuple[int, float]:
    """Decide what follows failed attempt ``attempt`` (1-based): ``(state, when)``.

    ``(RETRY_PENDING, now + delay)`` if the error is retryable and attempts
    remain (delay 0 without a backoff), else ``(DEAD, now)``.

    Example:
        >>> decide_retry(1, 3, now=100.0, backoff=Fixed(5.0)) == (RETRY_PENDING, 105.0)
        True
        >>> decide_retry(3, 3, now=100.0, backoff=Fixed(5.0)) == (DEAD, 100.0)
        True
    """
    when = _as_double(now)
    number = _count(attempt, "attempt")
    limit = _count(max_attempts, "max_attempts")
    if backoff is not None and not isinstance(backoff, Backoff):
        cls = type(backoff)
        raise TypeError(
            f"backoff must be a {__name__}.Backoff or None, got {cls.__module__}.{cls.__qualname__}"
        )
    if number == _MAX_COUNT or limit == _MAX_COUNT:
        # Clamped: compare the real counts so that a huge max_attempts still
        # means "retry" (the compiled twin needs this to stay in C ints).
        out_of_attempts = operator.index(attempt) >= operator.index(max_attempts)
    else:
        out_of_attempts = number >= limit
    if not retryable or out_of_attempts:
        return (DEAD, when)
    if backoff is None:
        return (RETRY_PENDING, when + 0.0)
    return (RETRY_PENDING, when + backoff._delay(number, operator.index(seed) & _MASK64))


__all__ = [
    "ACTIVE", "Backoff", "CANCELLED", "DEAD", "Exponential", "Fixed", "Linear", "QUEUED",
    "RETRY_PENDING", "SCHEDULED", "STATE_NAMES", "SUCCEEDED", "TERMINAL", "TRANSITIONS", "WAITING",
    "can_transition", "check_transition", "decide_retry", "initial_state", "state_from_name",
    "state_name",
]
