"""Type stub for the compiled job record (``_store_c``); mirrors ``_store_py``."""

from collections.abc import Callable
from typing import Any

class JobSlot:
    id: str
    queue: str
    state: int
    priority: int
    attempt: int
    max_attempts: int
    token: int
    body: bytes
    result: bytes | None
    errors: list[bytes] | None
    enqueued_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    lease_until: float | None
    unique_key: str | None
    def __init__(self, new: tuple[Any, ...], now: float) -> None: ...

def insert(jobs: list[Any], now: float, store: dict[str, Any], tasks: dict[str, str], live_of: Callable[[str], Any],
           index_of: Callable[[str], Any]) -> int: ...
def lease(store: dict[str, Any], active: dict[str, Any], taken: list[str], now: float, until: float,
          claim: type, claims: list[Any]) -> None: ...
def succeed(active: dict[str, Any], acks: list[Any], now: float, succeed_kind: int, dependants: dict[str, Any],
            applied: list[bool], succeeded: list[Any]) -> int: ...
