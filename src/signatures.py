"""A handler's call shape, read once at registration, so enqueue refuses arguments it could never bind.

``inspect.signature(...).bind`` costs microseconds; enqueue runs at ~300k jobs/s.
So the signature is reduced here to counts and name sets, and the common case
(positional arguments only) is checked by :class:`~fastjobs.task.Call` with one
range comparison on :attr:`Arity.fast_min` / :attr:`Arity.fast_max`; only calls
with keyword arguments (or outside that range) come to :meth:`Arity.problem`.

Example:
    >>> def charge(account: int, cents: int, *, currency: str = "EUR") -> None: ...
    >>> arity = Arity.of(charge, context=False)
    >>> arity.problem(1, {})
    "missing a required argument: 'cents'"
    >>> arity.problem(2, {"currency": "USD"}) is None
    True
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class _Source(str):
    """An annotation kept as source text (``from __future__ import annotations``), shown unquoted."""

    def __repr__(self) -> str:
        return str.__str__(self)


class Arity:
    """What a handler accepts from the caller (a ``context=True`` handler's first parameter removed).

    ``fast_min <= len(args) <= fast_max`` with no keyword arguments means the call binds;
    a handler that cannot be introspected accepts everything (range 0..maxsize, no problem).
    """

    __slots__ = ("fast_min", "fast_max", "known", "positional", "posonly", "required", "keyword_index",
                 "kwonly", "kwonly_required", "varargs", "varkw", "text", "parameters")

    def __init__(self) -> None:
        self.fast_min = 0
        self.fast_max = sys.maxsize
        self.known = False
        self.positional: tuple[str, ...] = ()
        self.posonly = 0
        self.required = 0
        self.keyword_index: dict[str, int] = {}
        self.kwonly: frozenset[str] = frozenset()
        self.kwonly_required: tuple[str, ...] = ()
        self.varargs = False
        self.varkw = False
        self.text = "(...)"
        """The signature as the caller sees it, for messages."""
        self.parameters: tuple[inspect.Parameter, ...] = ()
        """The parameters the caller fills, in order (what :mod:`fastjobs.typed` reads the annotations of)."""

    @classmethod
    def of(cls, fn: Callable[..., Any], context: bool) -> Arity:
        """The arity of ``fn`` as enqueued (without its Context with ``context=True``); unknown
        (no check) if ``fn`` cannot be introspected (some builtins, C extensions)."""
        arity = cls()
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return arity
        params = list(signature.parameters.values())
        if context:
            if params and params[0].kind in _POSITIONAL:
                params = params[1:]
            elif not params or params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
                return arity  # the worker's call fails whatever is enqueued: not ours to guess
        arity.parameters = tuple(params)
        positional = [p for p in params if p.kind in _POSITIONAL]
        arity.positional = tuple(p.name for p in positional)
        arity.posonly = sum(1 for p in positional if p.kind is inspect.Parameter.POSITIONAL_ONLY)
        arity.required = sum(1 for p in positional if p.default is inspect.Parameter.empty)
        arity.keyword_index = {name: i for i, name in enumerate(arity.positional) if i >= arity.posonly}
        kwonly = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        arity.kwonly = frozenset(p.name for p in kwonly)
        arity.kwonly_required = tuple(p.name for p in kwonly if p.default is inspect.Parameter.empty)
        arity.varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        arity.varkw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        arity.known = True
        # A required keyword-only parameter can only come by keyword: a call without
        # keyword arguments never binds, so the fast range is empty and it comes to problem().
        arity.fast_min = sys.maxsize if arity.kwonly_required else arity.required
        arity.fast_max = sys.maxsize if arity.varargs else len(arity.positional)
        shown = [p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str) else p for p in params]
        arity.text = str(signature.replace(parameters=shown, return_annotation=inspect.Signature.empty))
        return arity

    def problem(self, given: int, kwargs: Mapping[str, Any]) -> str | None:
        """Why ``given`` positional arguments and ``kwargs`` cannot bind (as ``TypeError`` would
        say it), or None if they can."""
        if not self.known:
            return None
        if given > len(self.positional) and not self.varargs:
            return f"it takes at most {len(self.positional)} positional argument(s) but {given} were given"
        for key in kwargs:
            index = self.keyword_index.get(key)
            if index is not None:
                if index < given:
                    return f"got multiple values for argument {key!r}"
            elif key not in self.kwonly and not self.varkw:
                if key in self.positional:
                    return f"{key!r} is positional-only: pass it by position, not by keyword"
                return f"got an unexpected keyword argument {key!r}"
        missing = [name for i, name in enumerate(self.positional[: self.required])
                   if i >= given and (i < self.posonly or name not in kwargs)]
        missing.extend(name for name in self.kwonly_required if name not in kwargs)
        if missing:
            names = ", ".join(repr(name) for name in missing)
            return f"missing a required argument: {names}" if len(missing) == 1 else f"missing required arguments: {names}"
        return None
