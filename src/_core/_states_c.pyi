"""Type stub for the compiled backoff and state machine; the twin ``_states_py`` is the reference."""

from typing import final

# The compiled module takes its tables from the shared plain module, so these are those very objects.
from ._states_rules import ACTIVE as ACTIVE
from ._states_rules import CANCELLED as CANCELLED
from ._states_rules import DEAD as DEAD
from ._states_rules import QUEUED as QUEUED
from ._states_rules import RETRY_PENDING as RETRY_PENDING
from ._states_rules import SCHEDULED as SCHEDULED
from ._states_rules import STATE_NAMES as STATE_NAMES
from ._states_rules import SUCCEEDED as SUCCEEDED
from ._states_rules import TERMINAL as TERMINAL
from ._states_rules import TRANSITIONS as TRANSITIONS
from ._states_rules import WAITING as WAITING
from ._states_rules import state_from_name as state_from_name

def state_name(state: int) -> str: ...
def can_transition(src: int, dst: int) -> bool: ...
def check_transition(src: int, dst: int) -> None: ...
def initial_state(run_at: float, now: float) -> int: ...

@final
class Backoff:
    def __init__(
        self,
        kind: str = "exponential",
        base: float = 1.0,
        factor: float = 2.0,
        cap: float = 3600.0,
        jitter: str = "full",
    ) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def base(self) -> float: ...
    @property
    def factor(self) -> float: ...
    @property
    def cap(self) -> float: ...
    @property
    def jitter(self) -> str: ...
    def raw(self, attempt: int) -> float: ...
    def delay(self, attempt: int, seed: int = 0) -> float: ...
    def to_spec(self) -> tuple[str, float, float, float, str]: ...
    @classmethod
    def from_spec(cls, spec: object) -> Backoff: ...
    def __reduce__(self) -> tuple[type[Backoff], tuple[str, float, float, float, str]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def Fixed(delay: float, jitter: str = "none") -> Backoff: ...  # noqa: N802
def Linear(  # noqa: N802
    base: float = 1.0, step: float = 1.0, cap: float = 3600.0, jitter: str = "none"
) -> Backoff: ...
def Exponential(  # noqa: N802
    base: float = 1.0, factor: float = 2.0, cap: float = 3600.0, jitter: str = "full"
) -> Backoff: ...
def decide_retry(
    attempt: int,
    max_attempts: int,
    now: float,
    backoff: Backoff | None,
    seed: int = 0,
    retryable: bool = True,
) -> tuple[int, float]: ...

__all__ = [
    "ACTIVE", "Backoff", "CANCELLED", "DEAD", "Exponential", "Fixed", "Linear", "QUEUED",
    "RETRY_PENDING", "SCHEDULED", "STATE_NAMES", "SUCCEEDED", "TERMINAL", "TRANSITIONS", "WAITING",
    "can_transition", "check_transition", "decide_retry", "initial_state", "state_from_name",
    "state_name",
]
