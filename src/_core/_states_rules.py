"""What both state-machine twins share: the job states, the transition table, and the cold code.

``_states_c.pyx`` and ``_states_py.py`` import these names as their own. The
tables are data, and the functions here run only to validate a Backoff's
options (a Backoff is built once per spec and cached) or to word an error, so
the compiled twin loses nothing by calling plain Python for them; the delay
arithmetic, which must match to the last bit, stays in each twin.

Example:
    >>> STATE_NAMES[RETRY_PENDING], (ACTIVE, RETRY_PENDING) in TRANSITIONS
    ('retry_pending', True)
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Final

from ._errors import InvalidOptionError, InvalidTransition

SCHEDULED: Final = 0
QUEUED: Final = 1
ACTIVE: Final = 2
SUCCEEDED: Final = 3
RETRY_PENDING: Final = 4
DEAD: Final = 5
CANCELLED: Final = 6
WAITING: Final = 7

STATE_NAMES: Final[tuple[str, ...]] = (
    "scheduled", "queued", "active", "succeeded", "retry_pending", "dead", "cancelled", "waiting",
)

TRANSITIONS: Final[frozenset[tuple[int, int]]] = frozenset({
    (SCHEDULED, QUEUED),  # run_at reached
    (SCHEDULED, CANCELLED),
    (QUEUED, ACTIVE),  # claimed by a worker
    (QUEUED, CANCELLED),
    (ACTIVE, SUCCEEDED),
    (ACTIVE, RETRY_PENDING),
    (ACTIVE, DEAD),
    # Released before it started (worker shutting down), or its lease expired
    # and recovery put it back: the attempt did not count as a failure.
    (ACTIVE, QUEUED),
    (ACTIVE, CANCELLED),
    (RETRY_PENDING, QUEUED),  # backoff elapsed
    (RETRY_PENDING, CANCELLED),
    (DEAD, QUEUED),  # retried by hand from the dead-letter set
    # Waiting on parent jobs (depends_on): released when they are done, or
    # cancelled when one of them failed (or by hand).
    (WAITING, QUEUED),
    (WAITING, SCHEDULED),
    (WAITING, CANCELLED),
})
"""Every legal ``(src, dst)`` move; anything else raises InvalidTransition."""

TERMINAL: Final[frozenset[int]] = frozenset({SUCCEEDED, DEAD, CANCELLED})
"""States no worker moves a job out of (``dead`` only leaves when retried by hand)."""

# A Backoff's kind and jitter, in the order of their codes in each twin.
_KINDS: Final = ("fixed", "linear", "exponential")
_JITTERS: Final = ("none", "full", "equal", "decorrelated")


def _option(value: object, what: str, minimum: float, accepted: str) -> float:
    """``value`` as a float >= minimum, or InvalidOptionError naming the option and range."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number) and number >= minimum:
            return number + 0.0  # + 0.0 turns -0.0 into 0.0: one spelling per value
    raise InvalidOptionError(f"{what} must be a finite number {accepted}, got {value!r}")


def _choice(value: object, what: str, choices: tuple[str, ...]) -> int:
    if isinstance(value, str) and value in choices:
        return choices.index(value)
    accepted = ", ".join(repr(choice) for choice in choices)
    raise InvalidOptionError(f"{what} must be one of {accepted}, got {value!r}")


def _transition_error(src: int, dst: int) -> InvalidTransition:
    labels: list[str] = []
    unknown: list[str] = []
    for state in (operator.index(src), operator.index(dst)):
        if 0 <= state < 8:
            labels.append(repr(STATE_NAMES[state]))
        else:
            labels.append(str(state))
            unknown.append(f"; {state} is not a job state (states are 0..7)")
    return InvalidTransition(f"cannot move a job from {labels[0]} to {labels[1]}" + "".join(unknown))


def state_from_name(name: str) -> int:
    """Return the job state called ``name`` (one of STATE_NAMES).

    Example:
        >>> state_from_name("dead") == DEAD
        True
    """
    for index, known in enumerate(STATE_NAMES):
        if known == name:
            return index
    accepted = ", ".join(repr(known) for known in STATE_NAMES)
    raise ValueError(f"unknown job state name {name!r}; expected one of {accepted}")
