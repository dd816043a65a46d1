"""Retry backoff and the job state machine: the compiled twin of ``_states_py``.

``_states_py`` is the reference; this module must behave identically, down to
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

cimport cython
from cpython.long cimport PyLong_AsLongAndOverflow, PyLong_AsLongLongAndOverflow
from cpython.long cimport PyLong_AsUnsignedLongLongMask
from libc.stdint cimport uint64_t

import operator

from fastjobs._core._errors import InvalidOptionError
# The tables and the cold code (option checks, error wording) are plain Python
# shared with the twin: see _states_rules.
from fastjobs._core._states_rules import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED
from fastjobs._core._states_rules import STATE_NAMES, SUCCEEDED, TERMINAL, TRANSITIONS, WAITING, _JITTERS
from fastjobs._core._states_rules import _KINDS, _choice, _option, _transition_error, state_from_name

cdef extern from *:
    """
    /* Every float operation of the delay arithmetic goes through one of these,
     * which stores its result in a volatile double. Without that, a compiler
     * may fuse a*b+c into one fused multiply-add (GCC does by default whenever
     * the target has FMA: aarch64, x86-64 with -march=haswell or native;
     * clang within one C expression) or keep intermediates in 80-bit x87
     * registers (i686). Either rounds differently from CPython, which rounds
     * every operation to a double, and the twins' delays would differ in the
     * last bit (tests/core/test_states.py catches it with -march=haswell).
     * A store and a load cost nothing next to a Python call. */
    static CYTHON_INLINE double fastjobs_add(double a, double b) { volatile double r = a + b; return r; }
    static CYTHON_INLINE double fastjobs_sub(double a, double b) { volatile double r = a - b; return r; }
    static CYTHON_INLINE double fastjobs_mul(double a, double b) { volatile double r = a * b; return r; }
    static CYTHON_INLINE double fastjobs_div(double a, double b) { volatile double r = a / b; return r; }
    """
    double _add "fastjobs_add"(double a, double b) noexcept nogil
    double _sub "fastjobs_sub"(double a, double b) noexcept nogil
    double _mul "fastjobs_mul"(double a, double b) noexcept nogil
    double _div "fastjobs_div"(double a, double b) noexcept nogil

# TRANSITIONS stays the one table; this is only a faster view of it, filled
# from it below.
cdef unsigned char _ALLOWED[8][8]
for _src, _dst in TRANSITIONS:
    _ALLOWED[_src][_dst] = 1
del _src, _dst

# Attempt counts are clamped here so that both twins can hold them in a C
# int64; no job gets anywhere near it.
cdef long long _MAX_COUNT = (<long long>1) << 62
# Exponential backoff and decorrelated jitter iterate once per attempt. Past
# this many attempts they behave as at this attempt, which bounds the work of
# one call; no real backoff gets there uncapped (a factor of 2 takes any base
# past the largest float within 2,100 steps).
cdef long long _MAX_STEPS = 10_000

cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15
cdef uint64_t _MIX1 = 0xBF58476D1CE4E5B9
cdef uint64_t _MIX2 = 0x94D049BB133111EB
cdef double _UNIT = 1.0 / 9007199254740992.0  # 2**-53, exact

cdef enum:
    _FIXED = 0
    _LINEAR = 1
    _EXPONENTIAL = 2

cdef enum:
    _NONE = 0
    _FULL = 1
    _EQUAL = 2
    _DECORRELATED = 3


cdef long long _count(object value, str name) except -1:
    cdef int overflow = 0
    cdef long long number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow < 0 or (overflow == 0 and number < 1):
        raise InvalidOptionError(f"{name} must be an integer >= 1, got {value!r}")
    return number if overflow == 0 and number < _MAX_COUNT else _MAX_COUNT


cdef inline uint64_t _seed64(object seed) except? 0xFFFFFFFFFFFFFFFF:
    # The C API reduces any int modulo 2**64 (negative ones included) without
    # allocating the intermediate ``seed & (2**64 - 1)`` the pure twin computes.
    return PyLong_AsUnsignedLongLongMask(seed)


cdef inline double _uniform(uint64_t seed, uint64_t i) noexcept nogil:
    # splitmix64: item i of the stream starting at seed. A counter-based
    # generator lets any attempt's jitter be recomputed without the ones before.
    # uint64_t arithmetic wraps modulo 2**64, which is what the twin masks to.
    cdef uint64_t z = seed + i * _GOLDEN + _GOLDEN
    z = (z ^ (z >> 30)) * _MIX1
    z = (z ^ (z >> 27)) * _MIX2
    z ^= z >> 31
    return _mul(<double>(z >> 11), _UNIT)


cdef inline int _state_index(object state) except -2:
    cdef int overflow = 0
    cdef long index = PyLong_AsLongAndOverflow(state, &overflow)
    if overflow or index < 0 or index >= 8:
        return -1
    return <int>index


def state_name(state):
    """Return the name of a job state.

    Example:
        >>> state_name(RETRY_PENDING)
        'retry_pending'
    """
    cdef int index = _state_index(state)
    if index < 0:
        raise ValueError(f"unknown job state {state!r}; job states are 0..6")
    return STATE_NAMES[index]


def can_transition(src, dst):
    """Tell whether a job may move from state ``src`` to state ``dst``.

    Unknown state numbers are never allowed; non-integers raise TypeError.

    Example:
        >>> can_transition(QUEUED, ACTIVE), can_transition(SUCCEEDED, ACTIVE)
        (True, False)
    """
    cdef int s = _state_index(src)
    cdef int d = _state_index(dst)
    return s >= 0 and d >= 0 and _ALLOWED[s][d] != 0


def check_transition(src, dst):
    """Raise InvalidTransition unless a job may move from ``src`` to ``dst``.

    Example:
        >>> check_transition(SUCCEEDED, ACTIVE)
        Traceback (most recent call last):
        ...
        fastjobs._core._errors.InvalidTransition: cannot move a job from 'succeeded' to 'active'
    """
    cdef int s = _state_index(src)
    cdef int d = _state_index(dst)
    if s >= 0 and d >= 0 and _ALLOWED[s][d]:
        return
    raise _transition_error(src, dst)


def initial_state(double run_at, double now):
    """Return the state a new job starts in: SCHEDULED if it runs later, else QUEUED.

    Example:
        >>> initial_state(run_at=110.0, now=100.0) == SCHEDULED
        True
    """
    return SCHEDULED if run_at > now else QUEUED


@cython.final
cdef class Backoff:
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

    cdef readonly str kind
    """"fixed", "linear" or "exponential"."""
    cdef readonly double base
    """The first delay, in seconds."""
    cdef readonly double factor
    """The linear step or the exponential growth factor."""
    cdef readonly double cap
    """The longest delay, in seconds."""
    cdef readonly str jitter
    """"none", "full", "equal" or "decorrelated"."""
    cdef int _kind
    cdef int _jitter

    def __init__(self, kind="exponential", base=1.0, factor=2.0, cap=3600.0, jitter="full"):
        cdef int kind_code = _choice(kind, "Backoff kind", _KINDS)
        cdef int jitter_code = _choice(jitter, "Backoff jitter", _JITTERS)
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
        self.kind = _KINDS[kind_code]
        self.jitter = _JITTERS[jitter_code]
        self._kind = kind_code
        self._jitter = jitter_code
        self.base = base_
        self.factor = factor_
        self.cap = cap_

    cpdef double raw(self, attempt) except? -1.0:
        """Return the delay after failed attempt ``attempt`` (>= 1), before jitter.

        Example:
            >>> Linear(base=5.0, step=10.0, cap=30.0).raw(3)
            25.0
        """
        return self._raw(_count(attempt, "attempt"))

    cpdef double delay(self, attempt, seed=0) except? -1.0:
        """Return the jittered delay after failed attempt ``attempt``; the same seed gives the same delay.

        ``seed`` may be any int (it is reduced modulo 2**64).

        Example:
            >>> backoff = Exponential(base=1.0, cap=60.0, jitter="equal")
            >>> 2.0 <= backoff.delay(3, seed=7) <= 4.0
            True
        """
        cdef long long number = _count(attempt, "attempt")
        return self._delay(number, _seed64(seed))

    cdef double _raw(self, long long attempt) noexcept nogil:
        cdef double cap = self.cap
        cdef double value = self.base
        cdef double factor = self.factor
        cdef long long steps
        if self._kind == _LINEAR:
            value = _add(value, _mul(factor, <double>(attempt - 1)))
        elif self._kind == _EXPONENTIAL and value != 0.0 and factor != 1.0:
            # Repeated multiplication, not pow(): C's pow() and Python's ``**``
            # may round differently, and a product of factors >= 1 never
            # decreases, so raw() is monotone in the attempt.
            steps = (attempt if attempt < _MAX_STEPS else _MAX_STEPS) - 1
            while steps > 0:
                value = _mul(value, factor)
                if value > cap:
                    return cap
                steps -= 1
        return cap if value > cap else value

    cdef double _delay(self, long long attempt, uint64_t seed) noexcept nogil:
        cdef double base, cap, value, raw, u
        cdef long long i, last
        if self._jitter == _DECORRELATED:
            base = self.base
            cap = self.cap
            value = base
            last = attempt if attempt < _MAX_STEPS else _MAX_STEPS
            i = 1
            while i <= last:
                value = _add(base, _mul(_uniform(seed, <uint64_t>i), _sub(_mul(3.0, value), base)))
                if value > cap:
                    value = cap
                i += 1
            return value
        raw = self._raw(attempt)
        if self._jitter == _NONE:
            return raw
        u = _uniform(seed, <uint64_t>attempt)
        if self._jitter == _FULL:
            return _mul(u, raw)
        return _add(_div(raw, 2.0), _div(_mul(u, raw), 2.0))

    def to_spec(self):
        """Return ``(kind, base, factor, cap, jitter)``, the form the job codec stores.

        Example:
            >>> Fixed(30.0).to_spec()
            ('fixed', 30.0, 0.0, 30.0, 'none')
        """
        return (self.kind, self.base, self.factor, self.cap, self.jitter)

    @classmethod
    def from_spec(cls, spec):
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

    def __reduce__(self):
        return (Backoff, self.to_spec())

    def __eq__(self, other):
        if not isinstance(other, Backoff):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __hash__(self):
        return hash(self.to_spec())

    def __repr__(self):
        return (
            f"Backoff(kind={self.kind!r}, base={self.base!r}, factor={self.factor!r}, "
            f"cap={self.cap!r}, jitter={self.jitter!r})"
        )


def Fixed(delay, jitter="none"):
    """Return a Backoff that always waits ``delay`` seconds (before jitter).

    Example:
        >>> Fixed(30.0).delay(7)
        30.0
    """
    seconds = _option(delay, "Fixed delay", 0.0, ">= 0")
    return Backoff("fixed", seconds, 0.0, seconds, jitter)


def Linear(base=1.0, step=1.0, cap=3600.0, jitter="none"):
    """Return a Backoff that waits ``base``, then ``step`` seconds longer after each failure.

    Example:
        >>> [Linear(base=1.0, step=2.0).raw(attempt) for attempt in (1, 2, 3)]
        [1.0, 3.0, 5.0]
    """
    step_ = _option(step, "Linear step", 0.0, ">= 0")
    return Backoff("linear", base, step_, cap, jitter)


def Exponential(base=1.0, factor=2.0, cap=3600.0, jitter="full"):
    """Return a Backoff that waits ``base``, then ``factor`` times longer after each failure.

    Example:
        >>> [Exponential(jitter="none").raw(attempt) for attempt in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 8.0]
    """
    return Backoff("exponential", base, factor, cap, jitter)


def decide_retry(attempt, max_attempts, double now, backoff, seed=0, retryable=True):
    """Decide what follows failed attempt ``attempt`` (1-based): ``(state, when)``.

    ``(RETRY_PENDING, now + delay)`` if the error is retryable and attempts
    remain (delay 0 without a backoff), else ``(DEAD, now)``.

    Example:
        >>> decide_retry(1, 3, now=100.0, backoff=Fixed(5.0)) == (RETRY_PENDING, 105.0)
        True
        >>> decide_retry(3, 3, now=100.0, backoff=Fixed(5.0)) == (DEAD, 100.0)
        True
    """
    cdef long long number = _count(attempt, "attempt")
    cdef long long limit = _count(max_attempts, "max_attempts")
    cdef bint out_of_attempts
    if backoff is not None and type(backoff) is not Backoff:
        cls = type(backoff)
        raise TypeError(
            f"backoff must be a {__name__}.Backoff or None, got {cls.__module__}.{cls.__qualname__}"
        )
    if number == _MAX_COUNT or limit == _MAX_COUNT:
        # Clamped: compare the real counts so that a huge max_attempts still
        # means "retry".
        out_of_attempts = operator.index(attempt) >= operator.index(max_attempts)
    else:
        out_of_attempts = number >= limit
    if not retryable or out_of_attempts:
        return (DEAD, now)
    if backoff is None:
        return (RETRY_PENDING, _add(now, 0.0))
    return (RETRY_PENDING, _add(now, (<Backoff>backoff)._delay(number, _seed64(seed))))


__all__ = [
    "ACTIVE", "Backoff", "CANCELLED", "DEAD", "Exponential", "Fixed", "Linear", "QUEUED",
    "RETRY_PENDING", "SCHEDULED", "STATE_NAMES", "SUCCEEDED", "TERMINAL", "TRANSITIONS", "WAITING",
    "can_transition", "check_transition", "decide_retry", "initial_state", "state_from_name",
    "state_name",
]
