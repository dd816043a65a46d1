"""Typed values on their own: what counts as typed, how a value becomes plain data, and how plain data is rebuilt.

:mod:`fastjobs.typed` applies these to a task's parameters and result; they are usable
alone too (``from fastjobs.typed import rebuild, to_plain``). A converter is built once
per annotation (:func:`converter`) and cached: it checks and rebuilds a decoded value in
one walk, and raises :class:`_Invalid` with the path to what does not fit.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Point:
    ...     x: int
    ...     y: int
    >>> rebuild(list[Point], to_plain([Point(1, 2)]))
    [Point(x=1, y=2)]
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import datetime as _dt
import decimal
import enum
import itertools
import json
import reprlib
import sys
import threading
import types
import typing
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union

from .errors import ArgumentValidationError, ConfigurationError

Convert = Callable[[Any], Any]
"""Turns one decoded value into what the annotation asks for, or raises :class:`_Invalid`."""

_SCALARS = (str, int, float, bool, type(None), bytes)
_LISTS = (list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection)
_SETS = (set, frozenset, cabc.Set, cabc.MutableSet)
_MAPS = (dict, cabc.Mapping, cabc.MutableMapping)
_UNIONS: tuple[Any, ...] = (Union, types.UnionType)
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


class _Invalid(Exception):
    """A value that does not fit; ``path`` is filled (innermost first) as the error unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def where(self) -> str:
        return "".join(reversed(self.path))


class _Unresolved(Exception):
    """An annotation names something not defined (yet): resolved again on first use."""


# -- encoding -------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """``value`` as plain data the job codec encodes: dataclasses as maps of their fields, enums as
    their values, pydantic models as ``model_dump(mode="json")``, sets as lists, in any container.

    Anything else is returned as it is, for the codec to encode or refuse with
    :class:`~fastjobs.UnencodableError`.

    Example:
        >>> import enum
        >>> class Color(enum.Enum):
        ...     RED = "red"
        >>> to_plain({"colors": [Color.RED], "n": 1})
        {'colors': ['red'], 'n': 1}
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    plain = _plainers.get(kind)
    if plain is None:
        plain = _plainers[kind] = _plainer(kind)
    return plain(value)


def _plainer(kind: type) -> Callable[[Any], Any]:
    """How :func:`to_plain` makes values of ``kind`` plain (found once per type, then cached)."""
    if issubclass(kind, enum.Enum):
        return lambda value: to_plain(value.value)
    if dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind) if f.init)
        return lambda value: {name: to_plain(getattr(value, name)) for name in names}
    if _is_model(kind):
        return lambda value: value.model_dump(mode="json")
    if issubclass(kind, (list, tuple, set, frozenset)):
        return lambda value: [to_plain(item) for item in value]
    if issubclass(kind, dict):
        return lambda value: {_plain_key(key): to_plain(item) for key, item in value.items()}
    return _as_is


_plainers: dict[type, Callable[[Any], Any]] = {}


def _plain_key(key: Any) -> Any:
    return key.value if isinstance(key, enum.Enum) else key


def _is_model(cls: Any) -> bool:
    """Whether ``cls`` is a pydantic (v2) model class; False without importing pydantic."""
    pydantic = sys.modules.get("pydantic")
    return (pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)
            and hasattr(cls, "model_validate"))


# -- which annotations are typed ---------------------------------------------------------


def _is_typeddict(tp: Any) -> bool:
    if typing.is_typeddict(tp):
        return True
    # typing_extensions' own TypedDict (what pydantic asks for before Python 3.12) has a metaclass of its own.
    extensions = sys.modules.get("typing_extensions")
    return extensions is not None and bool(extensions.is_typeddict(tp))


def _is_typed_class(tp: Any) -> bool:
    return isinstance(tp, type) and (
        issubclass(tp, enum.Enum) or dataclasses.is_dataclass(tp) or _is_typeddict(tp) or _is_model(tp)
    )


def names_typed(tp: Any) -> bool:
    """Whether the annotation ``tp`` names a dataclass, TypedDict, enum or pydantic model, at any depth.

    Example:
        >>> import enum
        >>> class Color(enum.Enum):
        ...     RED = 1
        >>> names_typed(dict[str, list[Color]]), names_typed(list[int])
        (True, False)
    """
    if _is_typed_class(tp) or _is_typed_class(typing.get_origin(tp)):
        return True
    if isinstance(tp, typing.NewType):
        return names_typed(tp.__supertype__)
    if typing.get_origin(tp) is Literal:  # its enum members travel as their values
        return any(isinstance(arg, enum.Enum) for arg in typing.get_args(tp))
    return any(names_typed(arg) for arg in typing.get_args(tp) if arg is not Ellipsis)


def type_name(tp: Any) -> str:
    """A short name for an annotation, for messages: ``Order``, ``list[Order]``, ``Order | None``."""
    if tp is type(None) or tp is None:
        return "None"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _UNIONS:
        return " | ".join(type_name(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    name = getattr(tp, "__qualname__", None)
    return name if isinstance(name, str) else repr(tp).replace("typing.", "")


# -- rebuilding -----------------------------------------------------------------------

_cache: dict[Any, Convert] = {}
_cache_lock = threading.Lock()


def rebuild(tp: Any, value: Any) -> Any:
    """``value`` (plain data, as decoded) made into the annotation ``tp``; raises
    :class:`~fastjobs.ArgumentValidationError` if it does not fit. The worker does this for a
    typed handler's arguments; call it yourself on a typed task's result.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Receipt:
        ...     total: int
        >>> rebuild(Receipt, {"total": 5})
        Receipt(total=5)
        >>> rebuild(Receipt, {"total": "5"})
        Traceback (most recent call last):
        fastjobs.errors.ArgumentValidationError: not a valid Receipt: .total: expected int, got str '5'
    """
    try:
        return converter(tp)(value)
    except _Invalid as exc:
        raise ArgumentValidationError(f"not a valid {type_name(tp)}: {_detail(exc)}") from None
    except _Unresolved as exc:
        raise ConfigurationError(f"the annotation {type_name(tp)} names something undefined: {exc}") from None


def _detail(exc: _Invalid) -> str:
    where = exc.where()
    return f"{where}: {exc.message}" if where else exc.message


def converter(tp: Any) -> Convert:
    """The function that rebuilds plain data into the annotation ``tp`` (built once per annotation)."""
    try:
        found = _cache.get(tp)
    except TypeError:  # an unhashable annotation (Literal of a list...): not cached
        return _build(tp, {})
    if found is None:
        with _cache_lock:
            found = _cache.get(tp)
            if found is None:
                found = _cache[tp] = _build(tp, {})
    return found


def _build(tp: Any, building: dict[Any, Convert]) -> Convert:
    """The converter of ``tp``; ``building`` holds the classes whose converters are being made (a
    dataclass that holds itself, ``children: list[Node]``, gets its own unfinished converter)."""
    if tp is Any or tp is object or isinstance(tp, typing.TypeVar):
        return _as_is
    if tp is None or tp is type(None):
        return _none
    if isinstance(tp, typing.NewType):
        return _build(tp.__supertype__, building)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is not None:
        if origin in _UNIONS:
            return _union(tp, [_build(arg, building) for arg in args])
        if origin is Literal:
            return _literal(args)
        if origin is typing.Annotated:
            return _build(args[0], building)
        if origin in _LISTS:
            return _sequence(list, _build(args[0], building) if args else _as_is)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return _sequence(tuple, _build(args[0], building))
            if args == ((),):
                return _fixed_tuple(())
            return _fixed_tuple(tuple(_build(arg, building) for arg in args))
        if origin in _SETS:
            kind = frozenset if origin is frozenset else set
            return _sequence(kind, _build(args[0], building) if args else _as_is)
        if origin in _MAPS:
            keys, values = (args if len(args) == 2 else (Any, Any))
            return _mapping(_build(keys, building), _build(values, building))
        if _is_typed_class(origin):  # a generic dataclass or TypedDict: Box[Order]
            if tp in building:
                return building[tp]
            typevars = dict(zip(getattr(origin, "__parameters__", ()), args))
            if isinstance(origin, type) and dataclasses.is_dataclass(origin):
                return _dataclass(origin, building, tp, typevars)
            if _is_typeddict(origin):
                return _typeddict(origin, building, tp, typevars)
            return _build(origin, building)
        return _as_is  # a generic this module does not know: passed as decoded
    if not isinstance(tp, type):
        return _as_is
    if tp in building:
        return building[tp]
    if issubclass(tp, enum.Enum):
        return _enum(tp)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, building)
    if _is_typeddict(tp):
        return _typeddict(tp, building)
    if _is_model(tp):
        return _model(tp)
    scalar = _SCALAR_CHECKS.get(tp)
    if scalar is not None:
        return scalar
    if tp in _LISTS:
        return _sequence(list, _as_is)
    if tp is tuple:
        return _sequence(tuple, _as_is)
    if tp in _SETS:
        return _sequence(frozenset if tp is frozenset else set, _as_is)
    if tp in _MAPS:
        return _mapping(_as_is, _as_is)
    return _as_is  # a class no payload can hold (the codec refuses its instances): nothing to check


def _got(value: Any) -> str:
    if value is None:
        return "None"
    return f"{type(value).__name__} {_short.repr(value)}"


def _as_is(value: Any) -> Any:
    return value


def _none(value: Any) -> Any:
    if value is not None:
        raise _Invalid(f"expected None, got {_got(value)}")
    return None


def _exact(kind: type) -> Convert:
    def check(value: Any) -> Any:
        if type(value) is kind:
            return value
        raise _Invalid(f"expected {kind.__name__}, got {_got(value)}")
    return check


def _int(value: Any) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _Invalid(f"expected int, got {_got(value)}")


def _float(value: Any) -> Any:
    if type(value) is float:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # an int stands for a float, as in a type checker
    raise _Invalid(f"expected float, got {_got(value)}")


def _instance(kind: type) -> Convert:
    def check(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        raise _Invalid(f"expected {kind.__name__}, got {_got(value)}")
    return check


_SCALAR_CHECKS: dict[Any, Convert] = {
    int: _int, float: _float, bool: _exact(bool), str: _instance(str), bytes: _instance(bytes),
    # What the codec decodes them as: aware datetimes, UUIDs and Decimals travel as themselves.
    _dt.datetime: _instance(_dt.datetime), uuid.UUID: _instance(uuid.UUID), decimal.Decimal: _instance(decimal.Decimal),
}


_FIELDS: weakref.WeakKeyDictionary[Convert, cabc.KeysView[str]] = weakref.WeakKeyDictionary()
"""A dataclass converter -> the names of its init fields (what :func:`to_plain` sends, all of them)."""


def _union(tp: Any, arms: list[Convert]) -> Convert:
    accepts_none = _none in arms
    # Two dataclass arms may both accept a map (the other's fields have defaults): the one whose
    # fields are exactly its keys is the one that was sent, so it is tried first.
    by_fields = [(arm, _FIELDS[arm]) for arm in arms if arm in _FIELDS]
    if len(by_fields) < 2:
        by_fields = []

    def convert(value: Any) -> Any:
        if value is None and accepts_none:
            return None
        if by_fields and type(value) is dict:
            keys = value.keys()
            for arm, names in by_fields:
                if names == keys:
                    try:
                        return arm(value)
                    except _Invalid:
                        break
        problems = []
        for arm in arms:
            try:
                return arm(value)
            except _Invalid as exc:
                problems.append(_detail(exc))
        raise _Invalid(f"matches no arm of {type_name(tp)}: {'; '.join(problems)}")
    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    def convert(value: Any) -> Any:
        for option in allowed:
            if value == option and type(value) is type(option):
                return option
            if isinstance(option, enum.Enum) and option.value == value:
                return option
        raise _Invalid(f"expected one of {', '.join(map(repr, allowed))}, got {_got(value)}")
    return convert


def _sequence(kind: Callable[[Any], Any], item: Convert) -> Convert:
    name = getattr(kind, "__name__", "list")

    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"expected a {name} (an array), got {_got(value)}")
        if item is _as_is:
            return kind(value)
        return kind(_each(zip(itertools.repeat(item), value)))
    return convert


def _fixed_tuple(items: tuple[Convert, ...]) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise _Invalid(f"expected an array of {len(items)} items, got {_got(value)}")
        return tuple(_each(zip(items, value)))
    return convert


def _each(pairs: Iterable[tuple[Convert, Any]]) -> list[Any]:
    """Each array item through its converter; a failure's path gets the item's index."""
    out = []
    for index, (item, element) in enumerate(pairs):
        try:
            out.append(item(element))
        except _Invalid as exc:
            exc.path.append(f"[{index}]")
            raise
    return out


def _mapping(keys: Convert, values: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"expected a map, got {_got(value)}")
        if keys is _as_is and values is _as_is:
            return value
        out = {}
        for key, item in value.items():
            try:
                out[keys(key)] = values(item)
            except _Invalid as exc:
                exc.path.append(f"[{key!r}]")
                raise
        return out
    return convert


def _enum(cls: type[enum.Enum]) -> Convert:
    members = cls._value2member_map_  # what cls(value) looks in first; calling cls costs ~10x more

    def convert(value: Any) -> Any:
        try:
            member = members.get(value)
        except TypeError:  # an unhashable value (a list): cls() says
            member = None
        if member is not None and type(member.value) is type(value):  # True is not 1
            return member
        if isinstance(value, cls):
            return value
        try:
            return cls(tuple(value) if isinstance(value, list) else value)  # a tuple value travels as a list
        except (ValueError, TypeError):
            shown = ", ".join(_short.repr(member.value) for member in cls)
            raise _Invalid(f"{_got(value)} is not a {cls.__qualname__} (its values: {shown})") from None
    return convert


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        raise _Unresolved(f"{cls.__qualname__}: {exc}") from None


def _substitute(hint: Any, typevars: dict[Any, Any]) -> Any:
    """``hint`` with a generic class's type parameters replaced by its arguments (``T`` -> ``Order``
    in ``list[T]`` for a ``Box[Order]``)."""
    if not typevars:
        return hint
    if isinstance(hint, typing.TypeVar):
        return typevars.get(hint, hint)
    params = getattr(hint, "__parameters__", None)
    if params and typing.get_origin(hint) is not None:
        try:
            return hint[tuple(typevars.get(param, param) for param in params)]
        except TypeError:  # a form that cannot be subscripted again: its parameters stay as they are
            return hint
    return hint


def _dataclass(cls: type, building: dict[Any, Convert], key: Any = None,
               typevars: dict[Any, Any] | None = None) -> Convert:
    """``key``, ``typevars``: a generic dataclass's alias (``Box[Order]``) and its type arguments."""
    fields: dict[str, Convert] = {}
    required: set[str] = set()

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise _Invalid(f"expected a map of {cls.__qualname__}'s fields, got {_got(value)}")
        given = {}
        for key, item in value.items():
            field = fields.get(key)  # a msgpack map's keys are hashable: str, int or bytes
            if field is None:
                raise _Invalid(f"{cls.__qualname__} has no field {key!r} (its fields: {', '.join(fields)})")
            try:
                given[key] = field(item)
            except _Invalid as exc:
                exc.path.append(f".{key}")
                raise
        if len(given) != len(fields) and not required <= given.keys():  # every field given: the usual case
            missing = ", ".join(repr(name) for name in fields if name in required and name not in given)
            raise _Invalid(f"{cls.__qualname__} is missing its required field(s) {missing}")
        try:
            return cls(**given)
        except (ValueError, TypeError) as exc:  # its own checks (__post_init__, a pydantic dataclass)
            raise _Invalid(f"{cls.__qualname__}(...) raised {type(exc).__name__}: {exc}") from None

    building[cls if key is None else key] = convert
    _FIELDS[convert] = fields.keys()
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        fields[field.name] = _build(_substitute(hints.get(field.name, Any), typevars or {}), building)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.add(field.name)
    return convert


def _key_marks() -> dict[Any, bool]:
    """``Required`` and ``NotRequired`` (typing's from 3.11, typing_extensions' if imported) -> required."""
    marks: dict[Any, bool] = {}
    for module in (typing, sys.modules.get("typing_extensions")):
        for name, needed in (("Required", True), ("NotRequired", False)):
            form = getattr(module, name, None)
            if form is not None:
                marks[form] = needed
    return marks



def _typeddict(cls: type, building: dict[Any, Convert], key: Any = None,
               typevars: dict[Any, Any] | None = None) -> Convert:
    """``key``, ``typevars``: as for :func:`_dataclass`."""
    keys: dict[str, Convert] = {}
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"expected a map ({cls.__qualname__}), got {_got(value)}")
        missing = [name for name in required if name not in value]
        if missing:
            raise _Invalid(f"{cls.__qualname__} is missing its required key(s) {', '.join(map(repr, sorted(missing)))}")
        out = dict(value)  # keys it does not declare are kept: a TypedDict's value may hold more
        for key, item in value.items():
            check = keys.get(key) if isinstance(key, str) else None
            if check is not None:
                try:
                    out[key] = check(item)
                except _Invalid as exc:
                    exc.path.append(f"[{key!r}]")
                    raise
        return out

    building[cls if key is None else key] = convert
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise _Unresolved(f"{cls.__qualname__}: {exc}") from None
    marks = _key_marks()  # here, not at import: typing_extensions may be imported after fastjobs
    marked = set()
    for name, hint in hints.items():
        # Required[] / NotRequired[] under `from __future__ import annotations` are missed by
        # __required_keys__ before Python 3.12 (the class only sees strings): read them here.
        while typing.get_origin(hint) in marks:
            marked.add((name, marks[typing.get_origin(hint)]))
            hint = typing.get_args(hint)[0]
        keys[name] = _build(_substitute(hint, typevars or {}), building)
    required = frozenset({*required} - {name for name, needed in marked if not needed}
                         | {name for name, needed in marked if needed})
    return convert


def _model(cls: Any) -> Convert:
    error = sys.modules["pydantic"].ValidationError

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls.model_validate(value)
        except error as exc:
            problem = str(exc)
        # to_plain sent model_dump(mode="json"), and a strict field (a datetime, a UUID...) takes
        # its JSON form (a string) only from JSON: validate the payload as the JSON it stands for.
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):  # not JSON data (bytes, a datetime): the first answer stands
            raise _Invalid(problem) from None
        try:
            return cls.model_validate_json(text)
        except error as exc:
            raise _Invalid(str(exc)) from None
    return convert


__all__ = ["Convert", "converter", "names_typed", "rebuild", "to_plain", "type_name"]
