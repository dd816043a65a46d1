"""Types and handlers for the typed-arguments tests (:mod:`fastjobs.typed`), importable by a pool's children.

The types live at module level, where ``typing.get_type_hints`` finds them. :func:`register`
puts the ``executor="process"`` handlers, under the same names, on any App: the tests' App on
the backend under test, and :data:`app` here, which the children import
(``process_app="tests.process.typed_app:app"``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import os
import uuid
from typing import Any, TypedDict

import pydantic

import fastjobs

REF = "tests.process.typed_app:app"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    M = 2


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    qty: int = 1
    color: Color = Color.RED


@dataclasses.dataclass
class Order:
    id: int
    items: list[Item]
    placed: dt.datetime
    ref: uuid.UUID
    total: decimal.Decimal
    tags: frozenset[str] = frozenset()
    note: str | None = None


class Address(TypedDict):
    city: str
    zip: int


class Place(pydantic.BaseModel):
    city: str
    zip: int


class Customer(pydantic.BaseModel):
    name: str
    size: Size
    place: Place


@dataclasses.dataclass
class Receipt:
    order: int
    lines: int
    color: Color


def receipt(order: Order, color: Color) -> Receipt:
    """A handler of the process pool: typed in and out, and says where it ran."""
    assert isinstance(order, Order) and all(isinstance(item, Item) for item in order.items), order
    assert isinstance(color, Color), color
    return Receipt(order.id, os.getpid(), color)


def customer_city(ctx: Any, customer: Customer) -> str:
    assert isinstance(customer, Customer) and isinstance(customer.size, Size), customer
    return f"{ctx.job_id}:{customer.place.city}"


def register(target: fastjobs.App) -> dict[str, fastjobs.Task[..., Any]]:
    """Register the process-executor handlers on ``target``; the tasks by name."""
    return {
        "typed.receipt": target.task(name="typed.receipt", executor="process")(receipt),
        "typed.customer": target.task(name="typed.customer", executor="process", context=True, max_attempts=5)(
            customer_city),
    }


app = fastjobs.App(os.environ.get("POOL_URL", "memory://"), lease=3.0)
register(app)
