"""Typed arguments: dataclasses, TypedDicts, enums and pydantic models as task parameters and results.

A job travels as msgpack, which knows maps, lists and scalars but no classes. So a
parameter annotated with such a type (or a container of them: ``list[Order]``,
``dict[str, Order]``, ``Order | None``) is encoded at enqueue by :func:`to_plain`
(a dataclass as the map of its fields, an enum as its value, a pydantic model as
``model_dump(mode="json")``), and rebuilt on the worker by :func:`rebuild` before the
handler is called: ``Order(**fields)`` all the way down, ``Color(value)``,
``Model.model_validate(data)``, a TypedDict's keys checked. Inside those types the
scalars are checked too (an ``int`` field gets an int). A payload that does not fit
raises :class:`~fastjobs.ArgumentValidationError`, a :class:`~fastjobs.Fail`: the job
is dead-lettered at once with the reason, never retried (the same bytes would fail
the same way). A result whose return annotation names such a type is stored as
:func:`to_plain` makes it; ``handle.result()`` gives that plain data back.

It is automatic: :meth:`TypedArguments.of` reads a handler's annotations once, at
``@app.task``, and returns None when none of them names such a type, so a plain task
pays nothing per job (its :attr:`Task.invoke <fastjobs.Task.invoke>` is its function
itself). Parameters with plain annotations (``int``, ``str``...) of a typed task are
passed as decoded, as for any task. pydantic stays optional: a model class is
recognized through ``sys.modules``, so fastjobs never imports pydantic itself.

Example:
    >>> import dataclasses, enum
    >>> class Size(enum.Enum):
    ...     S = "s"
    ...     M = "m"
    >>> @dataclasses.dataclass
    ... class Shirt:
    ...     size: Size
    ...     qty: int = 1
    >>> to_plain([Shirt(Size.M, 2)])
    [{'size': 'm', 'qty': 2}]
    >>> rebuild(list[Shirt], [{"size": "m", "qty": 2}])
    [Shirt(size=<Size.M: 'm'>, qty=2)]
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ArgumentValidationError, ConfigurationError
from .typed_values import Convert, _detail, _Invalid, _Unresolved, converter, names_typed, rebuild, to_plain, type_name

if TYPE_CHECKING:
    from .signatures import Arity

log = logging.getLogger("fastjobs.typed")

# -- a task's parameters ---------------------------------------------------------------

_Typed = tuple[str, Any, Convert]
"""A typed parameter: its name (for messages), its annotation, its converter."""


class TypedArguments:
    """How one task's typed parameters travel: encoded at enqueue, rebuilt before its handler runs.

    Made by :meth:`of` when the task is registered (None for a task whose annotations name no
    dataclass, TypedDict, enum or pydantic model). :meth:`invoke` is what the worker calls
    instead of the handler (:attr:`Task.invoke <fastjobs.Task.invoke>`).

    Example:
        >>> import dataclasses
        >>> from fastjobs.signatures import Arity
        >>> @dataclasses.dataclass
        ... class Order:
        ...     id: int
        >>> def ship(order: Order, note: str = "") -> None: ...
        >>> typed = TypedArguments.of(ship, Arity.of(ship, context=False), "shop.ship", context=False)
        >>> typed.encode((Order(7), "fragile"), {}, 0)
        (({'id': 7}, 'fragile'), {})
    """

    __slots__ = ("fn", "task", "context", "is_async", "_arity", "_resolved", "_positional", "_any_positional",
                 "_encoded_at", "_named", "_varargs", "_varkw", "_result")

    def __init__(self, fn: Callable[..., Any], arity: Arity, task: str, context: bool) -> None:
        self.fn = fn
        self.task = task
        self.context = context
        self.is_async = inspect.iscoroutinefunction(fn)
        self._arity = arity
        self._resolved = False
        self._positional: tuple[_Typed | None, ...] = ()
        """Per positional parameter (its Context excluded): its name, annotation and converter if typed."""
        self._any_positional = False
        """A positional argument may need rebuilding (a typed positional parameter, or typed ``*args``)."""
        self._encoded_at: tuple[int, ...] = ()
        """The indexes of the typed positional parameters."""
        self._named: dict[str, _Typed] = {}
        """Typed parameters that may come by keyword, by name."""
        self._varargs: _Typed | None = None
        self._varkw: _Typed | None = None
        self._result: Any = None
        """The return annotation, if typed: results are stored as :func:`to_plain` makes them."""

    @classmethod
    def of(cls, fn: Callable[..., Any], arity: Arity, task: str, context: bool) -> TypedArguments | None:
        """The typed arguments of handler ``fn`` (whose :class:`~fastjobs.signatures.Arity` is
        ``arity``), or None when its annotations name none of those types. An annotation that
        names what is not defined yet (a forward reference) is resolved again on first use."""
        if not arity.known:
            return None
        typed = cls(fn, arity, task, context)
        try:
            typed._resolve()
        except _Unresolved:
            return typed
        if typed._any_positional or typed._named or typed._varkw is not None or typed._result is not None:
            return typed
        return None

    def _resolve(self, final: bool = False) -> None:
        hints = self._hints(final)
        positional: list[_Typed | None] = []
        named: dict[str, _Typed] = {}
        varargs = varkw = None
        for param in self._arity.parameters:
            hint = hints.get(param.name)
            # Built now: a name undefined inside a dataclass shows here, not at the first job.
            typed = (param.name, hint, converter(hint)) if hint is not None and names_typed(hint) else None
            kind = param.kind
            if kind is inspect.Parameter.POSITIONAL_ONLY or kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                positional.append(typed)
                if typed is not None and kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                    named[param.name] = typed
            elif kind is inspect.Parameter.KEYWORD_ONLY:
                if typed is not None:
                    named[param.name] = typed
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                varargs = typed
            else:
                varkw = typed
        result = hints.get("return")
        self._result = result if result is not None and names_typed(result) else None
        self._positional, self._named, self._varargs, self._varkw = tuple(positional), named, varargs, varkw
        self._any_positional = varargs is not None or any(p is not None for p in positional)
        self._encoded_at = tuple(index for index, typed in enumerate(positional) if typed is not None)
        self._resolved = True

    def _hints(self, final: bool) -> dict[str, Any]:
        """The handler's annotations, resolved. One undefined name makes ``get_type_hints`` fail
        for them all, and a Context (which is never rebuilt) or a return type is often imported for
        type checkers only: then the annotations of the parameters the caller fills and the return
        are resolved one by one. Raises :class:`_Unresolved` while one of them is undefined, unless
        ``final``: it is then passed as decoded, as in an untyped task (warned once)."""
        fn = self.fn
        try:
            return typing.get_type_hints(fn)
        except NameError:
            pass
        except Exception:  # annotations typing cannot read: the handler is called as for any task
            return {}
        annotations = getattr(fn, "__annotations__", None) or {}
        unwrapped = inspect.unwrap(fn)
        globalns = getattr(unwrapped, "__globals__", {})
        hints: dict[str, Any] = {}
        undefined: dict[str, str] = {}
        defaults = {param.name: param.default for param in self._arity.parameters}
        for name in (*defaults, "return"):
            if name not in annotations:
                continue
            try:
                hint = typing.get_type_hints(types.SimpleNamespace(__annotations__={name: annotations[name]}), globalns)
            except NameError as exc:
                undefined[name] = str(exc)
                continue
            except Exception:
                continue
            if sys.version_info < (3, 11) and defaults.get(name, inspect.Parameter.empty) is None:
                hint = {name: typing.Optional[hint[name]]}  # what get_type_hints does for a None default before 3.11
            hints.update(hint)
        if undefined and not final:
            raise _Unresolved("; ".join(undefined.values()))
        if undefined:
            log.warning(
                "task %r: the annotation of %s names something undefined (%s): left as it is (not rebuilt, "
                "nor made plain); define or import it at module level if it is a dataclass, TypedDict, enum or "
                "pydantic model",
                self.task, ", ".join(repr(name) for name in undefined), "; ".join(undefined.values()),
            )
        return hints

    def _ensure(self) -> None:
        if not self._resolved:
            try:
                self._resolve(final=True)
            except _Unresolved as exc:
                raise ConfigurationError(
                    f"task {self.task!r}: an annotation of its handler names something undefined ({exc}): "
                    "define or import it at module level (typed arguments read the annotations to rebuild them)"
                ) from None

    def _keyword(self, name: str) -> _Typed | None:
        """The typed parameter a keyword argument fills: its own, or a typed ``**kwargs``."""
        typed = self._named.get(name)
        if typed is None and self._varkw is not None and name not in self._arity.keyword_index \
                and name not in self._arity.kwonly:
            return self._varkw
        return typed

    # -- enqueue

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any], offset: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args`` and ``kwargs`` with the typed parameters' values made plain (:func:`to_plain`);
        ``offset``: positional parameters filled later (a chain step's first one, its parent's result)."""
        if not self._resolved:
            self._ensure()
        if args and self._any_positional:
            out = list(args)
            for at in self._encoded_at:
                if 0 <= at - offset < len(out):
                    out[at - offset] = to_plain(out[at - offset])
            if self._varargs is not None:
                for index in range(max(0, len(self._positional) - offset), len(out)):
                    out[index] = to_plain(out[index])
            args = tuple(out)
        if kwargs and (self._named or self._varkw is not None):
            kwargs = {name: value if self._keyword(name) is None else to_plain(value) for name, value in kwargs.items()}
        return args, kwargs

    # -- the worker

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Call the handler with its typed arguments rebuilt (after its Context, which comes first
        with ``context=True``); raises :class:`~fastjobs.ArgumentValidationError` if one does not
        fit. An async handler's coroutine is returned, as calling the handler would."""
        if not self._resolved:
            self._ensure()
        head: tuple[Any, ...] = ()
        if self.context and args:
            head, args = args[:1], args[1:]
        if args and self._any_positional:
            positional = self._positional
            out = list(args)
            for index, value in enumerate(args):
                if index < len(positional):
                    typed = positional[index]
                    if typed is not None:
                        out[index] = self._rebuild(typed, value)
                elif self._varargs is not None:
                    out[index] = self._rebuild(self._varargs, value, index - len(positional))
            args = tuple(out)
        if kwargs and (self._named or self._varkw is not None):
            rebuilt = {}
            for name, value in kwargs.items():
                typed = self._keyword(name)
                if typed is None:
                    rebuilt[name] = value
                else:
                    rebuilt[name] = self._rebuild(typed, value, name if typed is self._varkw else None)
            kwargs = rebuilt
        value = self.fn(*head, *args, **kwargs)
        if self._result is None:
            return value
        if self.is_async:
            return _plain_result(value)
        return to_plain(value)

    def _rebuild(self, typed: _Typed, value: Any, extra: int | str | None = None) -> Any:
        """``extra``: for ``*args`` the index among them, for ``**kwargs`` the keyword (for the message)."""
        name, hint, convert = typed
        try:
            return convert(value)
        except _Invalid as exc:
            where = repr(name) if extra is None else f"{name}[{extra!r}]"
            raise ArgumentValidationError(
                f"task {self.task!r}: argument {where} is not a valid {type_name(hint)}: {_detail(exc)} "
                "(dead-lettered without retries: fix what enqueued it, then enqueue it again)"
            ) from None


async def _plain_result(coro: Any) -> Any:
    return to_plain(await coro)


__all__ = ["TypedArguments", "names_typed", "rebuild", "to_plain", "type_name"]
