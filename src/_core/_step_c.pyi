"""Type stub for the compiled first step; the signature matches ``_step_py``."""

import contextvars
from collections.abc import Coroutine
from typing import Any

def first_step(task: Any, loop: Any, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> tuple[bool, Any]: ...
