"""Typed arguments (fastjobs.typed), edge cases: annotations typing cannot resolve, pydantic models
with strict fields, and generic dataclasses."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import sys
import typing
import uuid
from typing import TYPE_CHECKING, Any, Generic, Literal, NewType, Optional, TypedDict, TypeVar

import pytest

import fastjobs
import fastjobs.testing
from fastjobs._core import decode_value, encode_value
from fastjobs.signatures import Arity
from fastjobs.typed import TypedArguments, names_typed, rebuild, to_plain

if TYPE_CHECKING:  # what typed code does with the Context: a name only type checkers see
    from fastjobs import Context as OnlyForTypeCheckers

T = TypeVar("T")


@dataclasses.dataclass
class Order:
    id: int


@dataclasses.dataclass
class Box(Generic[T]):
    item: T
    extra: list[T] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Tree(Generic[T]):
    value: T
    children: list[Tree[T]] = dataclasses.field(default_factory=list)


def typed_of(fn: Any, context: bool = False) -> TypedArguments | None:
    return TypedArguments.of(fn, Arity.of(fn, context), "t", context)


# -- annotations that name what only a type checker sees ---------------------------------


def test_a_context_annotated_with_a_type_checking_import_leaves_a_plain_task_untouched() -> None:
    async def plain(ctx: OnlyForTypeCheckers, name: str) -> str: ...

    assert typed_of(plain, context=True) is None  # nothing typed: no wrapper, no cost per job

    def typed(ctx: OnlyForTypeCheckers, order: Order, n: int) -> None: ...

    arguments = typed_of(typed, context=True)
    assert arguments is not None
    assert arguments.encode((Order(1), 2), {}, 0) == (({"id": 1}, 2), {})


async def test_such_a_task_enqueues_and_runs() -> None:
    app = fastjobs.App("memory://")
    seen: list[Any] = []

    @app.task(context=True)
    async def greet(ctx: OnlyForTypeCheckers, order: Order) -> str:
        seen.append(order)
        return "ok"

    job = await greet.enqueue(Order(3))
    async with fastjobs.testing.run_jobs(app):
        pass
    info = await app.get_job(job.id)
    assert info is not None and info.state == "succeeded", info
    assert seen == [Order(3)]


def test_a_parameter_whose_annotation_stays_undefined_is_passed_as_decoded(caplog: pytest.LogCaptureFixture) -> None:
    def handler(order: Order, other: NeverDefined, /, *, note: AlsoNeverDefined = None) -> Order:  # type: ignore[name-defined]  # noqa: F821
        return order

    arguments = typed_of(handler)
    assert arguments is not None
    with caplog.at_level(logging.WARNING, logger="fastjobs"):
        assert arguments.encode((Order(1), {"x": 1}), {"note": [1]}, 0) == (({"id": 1}, {"x": 1}), {"note": [1]})
    assert "'other'" in caplog.text and "'note'" in caplog.text and "NeverDefined" in caplog.text
    assert arguments.invoke({"id": 2}, {"x": 1}, note=[1]) == {"id": 2}  # its typed parts still work
    with pytest.raises(fastjobs.ArgumentValidationError, match="argument 'order'"):
        arguments.invoke({"id": "2"}, {"x": 1})


# -- pydantic ------------------------------------------------------------------------------


def test_a_strict_pydantic_model_comes_back_from_its_json_mode_dump() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True)
        when: dt.datetime
        ref: uuid.UUID
        n: int

    model = Strict(when=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), ref=uuid.UUID(int=5), n=1)
    assert rebuild(Strict, decode_value(encode_value(to_plain(model)))) == model
    with pytest.raises(fastjobs.ArgumentValidationError, match="validation error"):
        rebuild(Strict, {"when": "2026-01-01T00:00:00Z", "ref": str(uuid.UUID(int=5)), "n": "1"})  # strict stays strict
    with pytest.raises(fastjobs.ArgumentValidationError, match="validation error"):
        rebuild(Strict, {"when": dt.datetime(2026, 1, 1), "ref": b"\xff", "n": 1})  # not JSON at all: still refused


# -- generic dataclasses -----------------------------------------------------------------


def test_a_generic_dataclass_rebuilds_its_fields_by_its_type_arguments() -> None:
    value = Box(Order(1), [Order(2)])
    assert rebuild(Box[Order], decode_value(encode_value(to_plain(value)))) == value
    assert rebuild(list[Box[Order]], [{"item": {"id": 1}}]) == [Box(Order(1))]
    assert rebuild(Box[int], {"item": 5}) == Box(5)
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"\.item\.id: expected int"):
        rebuild(Box[Order], {"item": {"id": "1"}})
    assert rebuild(Box, {"item": {"id": 1}}) == Box({"id": 1})  # unparametrized: the field as decoded


def test_a_recursive_generic_dataclass_and_a_generic_typeddict() -> None:
    tree = Tree(Order(1), [Tree(Order(2)), Tree(Order(3), [Tree(Order(4))])])
    assert rebuild(Tree[Order], decode_value(encode_value(to_plain(tree)))) == tree
    if sys.version_info < (3, 11):
        return  # a generic TypedDict needs Python 3.11

    class Page(TypedDict, Generic[T]):
        items: list[T]

    assert rebuild(Page[Order], {"items": [{"id": 1}], "next": None}) == {"items": [Order(1)], "next": None}


# -- Literal of enum members -----------------------------------------------------------------


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


async def test_a_parameter_annotated_with_a_literal_of_enum_members_is_typed() -> None:
    assert names_typed(Literal[Shade.DARK]) and names_typed(list[Literal[Shade.DARK, Shade.LIGHT]])
    assert not names_typed(Literal["light", 1])
    app = fastjobs.App("memory://")
    seen: list[Any] = []

    @app.task()
    async def paint(shade: Literal[Shade.DARK, Shade.LIGHT]) -> None:
        seen.append(shade)

    job = await paint.enqueue(Shade.DARK)  # refused by the codec before: an enum is not plain data
    async with fastjobs.testing.run_jobs(app):
        pass
    info = await app.get_job(job.id)
    assert info is not None and info.state == "succeeded" and seen == [Shade.DARK]


Paid = NewType("Paid", Order)


def test_a_newtype_of_a_dataclass_is_typed() -> None:
    assert names_typed(Paid) and names_typed(list[Paid])

    def handler(order: Paid) -> None: ...

    arguments = typed_of(handler)
    assert arguments is not None and arguments.encode((Order(1),), {}, 0) == (({"id": 1},), {})


async def test_enqueue_by_name_of_a_task_registered_elsewhere_reads_no_annotations(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its stand-in handler has none to read: get_type_hints cost each such enqueue ~35 us (doubling it).
    app = fastjobs.App("memory://")
    calls: list[Any] = []
    real = typing.get_type_hints

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    await app.enqueue_by_name("elsewhere.task", args=[1])
    assert calls == []
    await app.close()


@dataclasses.dataclass
class Created:
    id: int


@dataclasses.dataclass
class Updated:
    id: int
    fields: list[str] = dataclasses.field(default_factory=list)


def test_a_union_of_dataclasses_gives_back_the_one_that_was_sent() -> None:
    # to_plain sends every init field: Created's map has no "fields", so Updated is not it, though
    # Updated (first in the union) would accept it with its default.
    for event in (Created(1), Updated(2, ["a"])):
        assert rebuild(Updated | Created, to_plain(event)) == event
        assert rebuild(Optional[Created | Updated], to_plain(event)) == event
    assert rebuild(Updated | Created, {"id": 3}) == Created(3)
    with pytest.raises(fastjobs.ArgumentValidationError, match="matches no arm"):
        rebuild(Updated | Created, {"id": "3"})
