"""The typed-arguments converter (:mod:`fastjobs.typed`) on its own: what is typed, to_plain,
rebuild and its messages, a task's parameters (context, ``*args``, ``**kwargs``, forward
references), and a property: encode -> the job codec -> decode -> rebuild gives the value back."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import uuid
import sys
from typing import Any, Literal, NewType, Optional, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastjobs
from fastjobs._core import decode_value, encode_value
from fastjobs.signatures import Arity
from fastjobs.typed import TypedArguments, names_typed, rebuild, to_plain, type_name

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover
    from typing_extensions import NotRequired


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(enum.Enum):
    ORIGIN = (0, 0)


@dataclasses.dataclass(frozen=True)
class Tag:
    name: str
    level: Level = Level.LOW


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Record:
    id: int
    ratio: float
    label: str
    blob: bytes
    flag: bool
    when: dt.datetime
    ref: uuid.UUID
    amount: decimal.Decimal
    color: Color
    tags: list[Tag]
    by_color: dict[Color, int]
    pair: tuple[int, str]
    labels: frozenset[str]
    parent: Optional[Tag] = None
    kind: Literal["a", "b"] = "a"
    computed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.computed = len(self.tags)


class Movie(TypedDict):
    title: str
    year: int
    rating: NotRequired[float]


class LooseMovie(TypedDict, total=False):
    title: str
    tags: list[Tag]


try:
    import typing_extensions as extensions  # what pydantic asks for before Python 3.12
except ImportError:  # pragma: no cover
    extensions = None  # type: ignore[assignment]
else:
    class Film(extensions.TypedDict):
        title: str
        tags: extensions.NotRequired[list[Tag]]


@dataclasses.dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


UserId = NewType("UserId", int)


# -- what is typed ---------------------------------------------------------------------


def test_names_typed_looks_into_containers_and_unions() -> None:
    assert names_typed(Record) and names_typed(Color) and names_typed(Movie) and names_typed(LooseMovie)
    assert names_typed(list[Tag]) and names_typed(dict[str, Tag]) and names_typed(Tag | None)
    assert names_typed(tuple[int, Tag]) and names_typed(Optional[list[Color]])
    for plain in (int, str, list[int], dict[str, Any], Any, Literal["a"], tuple[int, ...], int | None):
        assert not names_typed(plain), plain


def test_type_names_are_short() -> None:
    assert type_name(Tag) == "Tag" and type_name(list[Tag]) == "list[Tag]" and type_name(Tag | None) == "Tag | None"
    assert type_name(dict[str, tuple[Tag, ...]]) == "dict[str, tuple[Tag, ...]]"


# -- to_plain and rebuild ----------------------------------------------------------------


def record() -> Record:
    return Record(1, 0.5, "x", b"\x00", True, dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), uuid.UUID(int=5),
                  decimal.Decimal("1.10"), Color.BLUE, [Tag("t", Level.HIGH)], {Color.RED: 3}, (4, "four"),
                  frozenset({"l"}), Tag("p"), "b")


def test_a_dataclass_goes_out_as_plain_data_and_comes_back() -> None:
    value = record()
    plain = to_plain(value)
    assert plain["color"] == "blue" and plain["tags"] == [{"name": "t", "level": 2}] and plain["by_color"] == {"red": 3}
    assert plain["pair"] == [4, "four"] and plain["labels"] == ["l"] and "computed" not in plain  # init=False: rebuilt
    back = rebuild(Record, decode_value(encode_value(plain)))
    assert back == value and back.computed == 1 and type(back.labels) is frozenset and type(back.pair) is tuple
    assert back.tags[0].level is Level.HIGH and back.by_color == {Color.RED: 3}
    with pytest.raises(fastjobs.ArgumentValidationError, match="Record has no field 'computed'"):
        rebuild(Record, {**plain, "computed": 5})  # not an argument of its __init__


def test_self_referencing_dataclasses_and_tuple_valued_enums() -> None:
    tree = Node(1, [Node(2), Node(3, [Node(4)])])
    assert rebuild(Node, to_plain(tree)) == tree
    assert rebuild(Point, decode_value(encode_value(to_plain(Point.ORIGIN)))) is Point.ORIGIN


def test_typeddicts_check_their_keys_and_keep_extra_ones() -> None:
    assert rebuild(Movie, {"title": "M", "year": 1927}) == {"title": "M", "year": 1927}
    assert rebuild(Movie, {"title": "M", "year": 1927, "rating": 9, "extra": 1}) == {
        "title": "M", "year": 1927, "rating": 9.0, "extra": 1}
    assert rebuild(LooseMovie, {"tags": [{"name": "n"}]}) == {"tags": [Tag("n")]}
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"Movie is missing its required key\(s\) 'year'"):
        rebuild(Movie, {"title": "M"})
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"\['year'\]: expected int, got str '1927'"):
        rebuild(Movie, {"title": "M", "year": "1927"})


def test_typing_extensions_typeddicts_count_too() -> None:
    if extensions is None:
        pytest.skip("typing_extensions is not installed")
    assert names_typed(Film) and names_typed(list[Film])
    assert rebuild(Film, {"title": "F", "tags": [{"name": "n"}]}) == {"title": "F", "tags": [Tag("n")]}
    assert rebuild(Film, {"title": "F"}) == {"title": "F"}
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"Film is missing its required key\(s\) 'title'"):
        rebuild(Film, {})


@pytest.mark.parametrize(("tp", "value", "message"), [
    (Tag, {"name": 5}, ".name: expected str, got int 5"),
    (Tag, ["t"], "expected a map of Tag's fields, got list ['t']"),
    (Tag, {"name": "t", "level": 3}, ".level: int 3 is not a Level (its values: 1, 2)"),
    (Tag, {"nam": "t"}, "Tag has no field 'nam' (its fields: name, level)"),
    (Record, {"id": True}, ".id: expected int, got bool True"),
    (list[Tag], [{"name": "a"}, {"name": None}], "[1].name: expected str, got None"),
    (dict[str, Tag], {"k": {}}, "['k']: Tag is missing its required field(s) 'name'"),
    (tuple[int, str], [1], "expected an array of 2 items, got list [1]"),
    (Tag | int, "x", "matches no arm of Tag | int: expected a map of Tag's fields, got str 'x'; expected int, got str 'x'"),
    (Literal["a", "b"], "c", "expected one of 'a', 'b', got str 'c'"),
    (Positive, {"n": 0}, "Positive(...) raised ValueError: n must be positive"),
    (dict[Color, int], {"green": 1}, "['green']: str 'green' is not a Color"),
    (UserId, "7", "expected int, got str '7'"),
])
def test_what_does_not_fit_says_where_and_why(tp: Any, value: Any, message: str) -> None:
    with pytest.raises(fastjobs.ArgumentValidationError) as caught:
        rebuild(tp, value)
    assert message in str(caught.value), str(caught.value)
    assert isinstance(caught.value, fastjobs.Fail)  # dead at once, never retried


def test_unknown_shapes_pass_as_decoded() -> None:
    @dataclasses.dataclass
    class Holder:
        anything: Any
        obj: object
        some: dict  # type: ignore[type-arg]
        values: list  # type: ignore[type-arg]

    value = {"anything": {1: 2}, "obj": [1], "some": {"a": 1}, "values": [1, "x"]}
    assert rebuild(Holder, value) == Holder({1: 2}, [1], {"a": 1}, [1, "x"])
    assert rebuild(UserId, 7) == 7 and rebuild(float, 2) == 2.0 and type(rebuild(float, 2)) is float


def test_pydantic_models() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):
        sku: str
        when: dt.datetime
        ref: uuid.UUID
        price: decimal.Decimal

    class Cart(pydantic.BaseModel):
        items: list[Item]
        color: Color

    cart = Cart(items=[Item(sku="s", when=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), ref=uuid.UUID(int=1),
                            price=decimal.Decimal("2.50"))], color=Color.RED)
    plain = to_plain({"cart": cart})
    assert plain["cart"]["color"] == "red" and isinstance(plain["cart"]["items"][0]["when"], str)  # mode="json"
    assert rebuild(dict[str, Cart], decode_value(encode_value(plain))) == {"cart": cart}
    with pytest.raises(fastjobs.ArgumentValidationError, match="1 validation error for Cart"):
        rebuild(Cart, {"items": [], "color": "green"})


# -- a task's parameters -------------------------------------------------------------------


def typed_of(fn: Any, context: bool = False) -> TypedArguments | None:
    return TypedArguments.of(fn, Arity.of(fn, context), "t", context)


def test_only_tasks_whose_annotations_name_such_types_are_typed() -> None:
    def plain(a: int, b: list[str], *rest: int, **more: Any) -> dict[str, int]: ...

    def untyped(a, b):  # type: ignore[no-untyped-def]
        ...

    def returns(a: int) -> Tag: ...

    assert typed_of(plain) is None and typed_of(untyped) is None and typed_of(print) is None
    assert typed_of(returns) is not None


def test_invoke_rebuilds_positional_keyword_varargs_and_varkw_after_the_context() -> None:
    calls: list[Any] = []

    def handler(ctx: Any, tag: Tag, /, n: int, color: Color = Color.RED, *more: Tag, level: Level, **rest: Color) -> Tag:
        calls.append((ctx, tag, n, color, more, level, rest))
        return tag

    typed = typed_of(handler, context=True)
    assert typed is not None
    args, kwargs = typed.encode((Tag("a"), 5, Color.BLUE, Tag("b")), {"level": Level.HIGH, "x": Color.BLUE}, 0)
    assert args == ({"name": "a", "level": 1}, 5, "blue", {"name": "b", "level": 1})
    assert kwargs == {"level": 2, "x": "blue"}
    assert typed.invoke("ctx", *args, **kwargs) == {"name": "a", "level": 1}  # the typed result, made plain
    assert calls == [("ctx", Tag("a"), 5, Color.BLUE, (Tag("b"),), Level.HIGH, {"x": Color.BLUE})]
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"argument more\[1\] is not a valid Tag"):
        typed.invoke("ctx", {"name": "a"}, 1, "red", {"name": "b"}, {"nam": "c"}, level=1)
    with pytest.raises(fastjobs.ArgumentValidationError, match=r"argument rest\['y'\] is not a valid Color"):
        typed.invoke("ctx", {"name": "a"}, 1, level=1, y="green")
    with pytest.raises(fastjobs.ArgumentValidationError, match="argument 'level' is not a valid Level"):
        typed.invoke("ctx", {"name": "a"}, 1, level=3)


def test_a_chain_steps_first_argument_comes_later() -> None:
    def step(previous: Tag, also: Tag) -> None: ...

    typed = typed_of(step)
    assert typed is not None
    assert typed.encode((Tag("b"),), {}, 1) == (({"name": "b", "level": 1},), {})


def test_an_async_handlers_result_is_made_plain() -> None:
    async def handler(tag: Tag) -> list[Tag]:
        return [tag, tag]

    typed = typed_of(handler)
    assert typed is not None
    assert asyncio.run(typed.invoke({"name": "z"})) == [{"name": "z", "level": 1}] * 2


def test_forward_references_resolve_on_first_use() -> None:
    def handler(item: Later) -> None: ...  # noqa: F821  # defined below, after "decoration"

    typed = typed_of(handler)
    assert typed is not None  # not known yet: resolved again at first use

    def never(item: Undefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    never_typed = typed_of(never)
    assert never_typed is not None
    # Still undefined at first use (imported for type checkers only): passed as decoded, as in an
    # untyped task, and warned about (tests/test_typed_edge_cases.py).
    assert never_typed.encode(({},), {}, 0) == (({},), {})
    globals()["Later"] = Tag
    try:
        assert typed.encode((Tag("n"),), {}, 0) == (({"name": "n", "level": 1},), {})
    finally:
        del globals()["Later"]


def test_app_task_wires_it_and_typed_false_turns_it_off() -> None:
    app = fastjobs.App("memory://")

    @app.task()
    def typed(tag: Tag) -> None: ...

    @app.task(typed=False)
    def off(tag: Tag) -> None: ...

    @app.task()
    def plain(n: int) -> int:
        return n

    assert typed.typed is not None and typed.invoke == typed.typed.invoke
    assert off.typed is None and off.invoke is off.fn and plain.invoke is plain.fn


# -- the property -------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
TAGS = st.builds(Tag, name=TEXT, level=st.sampled_from(Level))
RECORDS = st.builds(
    Record,
    id=st.integers(-(2**63), 2**63 - 1),
    ratio=st.floats(allow_nan=False),
    label=TEXT,
    blob=st.binary(max_size=20),
    flag=st.booleans(),
    when=st.datetimes(timezones=st.just(dt.timezone.utc), min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    ref=st.uuids(),
    amount=st.decimals(allow_nan=False, allow_infinity=False),
    color=st.sampled_from(Color),
    tags=st.lists(TAGS, max_size=4),
    by_color=st.dictionaries(st.sampled_from(Color), st.integers(0, 100)),
    pair=st.tuples(st.integers(0, 10), TEXT),
    labels=st.frozensets(TEXT, max_size=4),
    parent=st.none() | TAGS,
    kind=st.sampled_from(["a", "b"]),
)


@settings(max_examples=150)
@given(value=RECORDS)
def test_encode_codec_decode_rebuild_gives_the_value_back(value: Record) -> None:
    assert rebuild(Record, decode_value(encode_value(to_plain(value)))) == value


@settings(max_examples=50)
@given(tree=st.recursive(st.builds(Node, value=st.integers(-(2**63), 2**63 - 1)),
                         lambda kids: st.builds(Node, value=st.integers(0, 9), children=st.lists(kids, max_size=3)),
                         max_leaves=20))
def test_recursive_dataclasses_round_trip(tree: Node) -> None:
    assert rebuild(Node, decode_value(encode_value(to_plain(tree)))) == tree
