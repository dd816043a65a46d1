"""Typed arguments on every backend (:mod:`fastjobs.typed`): dataclasses, TypedDicts, enums and
pydantic models go out as plain maps, come back rebuilt in the handler (async, on a thread, in a
process-pool child), and a payload that does not fit is dead at its first attempt."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import uuid
from typing import Any

import pytest

import fastjobs

pytest.importorskip("pydantic")

from tests.contract.test_worker_contract import run_burst  # noqa: E402
from tests.process import typed_app  # noqa: E402
from tests.process.typed_app import Address, Color, Customer, Item, Order, Place, Receipt, Size  # noqa: E402

ORDER = Order(7, [Item("a-1", 2, Color.GREEN), Item("b-2")], dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.timezone.utc),
              uuid.UUID(int=42), decimal.Decimal("19.99"), frozenset({"gift"}), None)
CUSTOMER = Customer(name="Ada", size=Size.M, place=Place(city="Paris", zip=75001))


async def dead_error(app: fastjobs.App, handle: fastjobs.JobHandle[Any]) -> tuple[int, str, str]:
    """(attempt, error type, error message) of a job that must be dead."""
    info = await app.get_job(handle.id)
    assert info is not None and info.state == "dead", info
    assert len(info.errors) == 1, info.errors
    return info.attempt, info.errors[0].type, info.errors[0].message


async def test_typed_arguments_round_trip_through_a_worker(app: fastjobs.App) -> None:
    seen: list[Any] = []

    @app.task(name="typed.place")
    async def place(order: Order, address: Address, customer: Customer, *, color: Color = Color.RED) -> Receipt:
        seen.append((order, address, customer, color))
        return Receipt(order.id, len(order.items), color)

    @app.task(name="typed.sizes")
    def sizes(by_sku: dict[str, Item], maybe: Order | None, sizes: list[Size]) -> list[Item]:  # on a thread
        seen.append((by_sku, maybe, sizes))
        return sorted(by_sku.values(), key=lambda item: item.sku)

    @app.task(name="typed.context", context=True)
    async def with_context(ctx: fastjobs.Context, items: tuple[Item, ...]) -> int:
        assert ctx.job_id
        seen.append(items)
        return len(items)

    address: Address = {"city": "Lyon", "zip": 69001}
    first = await place.enqueue(ORDER, address, CUSTOMER, color=Color.GREEN)
    second = await sizes.enqueue({"x": Item("x", 3), "y": Item("y")}, None, [Size.S, Size.M])
    third = await sizes.options(priority=1).enqueue({}, ORDER, [])
    fourth = await with_context.enqueue((Item("c"), Item("d", 4, Color.GREEN)))
    stored = await app.get_job(first.id)
    assert stored is not None and stored.args[0]["items"][0] == {"sku": "a-1", "qty": 2, "color": "green"}  # plain maps
    assert stored.args[2] == {"name": "Ada", "size": 2, "place": {"city": "Paris", "zip": 75001}}

    worker = await run_burst(app)
    assert worker.succeeded == 4 and worker.failed == 0
    by_kind = {type(entry[0]).__name__: entry for entry in seen}
    order, got_address, customer, color = by_kind["Order"]
    assert order == ORDER and type(order.tags) is frozenset and order.items[0].color is Color.GREEN
    assert got_address == address and customer == CUSTOMER and type(customer.place) is Place and color is Color.GREEN
    by_sku, maybe, got_sizes = next(e for e in seen if isinstance(e, tuple) and len(e) == 3 and e[1] is None)
    assert by_sku == {"x": Item("x", 3), "y": Item("y")} and got_sizes == [Size.S, Size.M]
    assert type(got_sizes[0]) is Size
    assert any(isinstance(e, tuple) and len(e) == 3 and e[1] == ORDER for e in seen)  # Order | None, not None
    assert next(e for e in seen if isinstance(e, tuple) and e and isinstance(e[0], Item)) == (Item("c"), Item("d", 4, Color.GREEN))
    # Results whose annotation is typed are stored as plain data.
    assert await first.result(timeout=5) == {"order": 7, "lines": 2, "color": "green"}
    assert await second.result(timeout=5) == [{"sku": "x", "qty": 3, "color": "red"}, {"sku": "y", "qty": 1, "color": "red"}]
    assert await third.result(timeout=5) == []
    assert await fourth.result(timeout=5) == 2
    assert fastjobs.typed.rebuild(Receipt, await first.result(timeout=5)) == Receipt(7, 2, Color.GREEN)


async def test_a_payload_that_does_not_validate_is_dead_at_its_first_attempt(app: fastjobs.App) -> None:
    ran: list[Any] = []

    @app.task(name="typed.strict", max_attempts=5)
    async def strict(order: Order) -> None:
        ran.append(order)

    @app.task(name="typed.model", max_attempts=5)
    def model(customer: Customer, color: Color) -> None:
        ran.append(customer)

    good = {"id": 1, "items": [], "placed": ORDER.placed, "ref": ORDER.ref, "total": ORDER.total}
    # Enqueued by name, raw: nothing on the way checks it; the worker does.
    wrong_qty = await app.enqueue_by_name("typed.strict", args=[{**good, "items": [{"sku": "a", "qty": "two"}]}])
    missing = await app.enqueue_by_name("typed.strict", args=[{"id": 1}], max_attempts=5)
    unknown = await app.enqueue_by_name("typed.strict", kwargs={"order": {**good, "colour": "red"}})
    bad_model = await app.enqueue_by_name("typed.model", args=[{"name": "Ada", "size": 9, "place": {}}, "red"])
    bad_enum = await app.enqueue_by_name("typed.model", args=[CUSTOMER.model_dump(mode="json"), "blue"])
    fine = await app.enqueue_by_name("typed.strict", args=[good])

    worker = await run_burst(app)
    assert worker.succeeded == 1 and worker.failed == 5
    assert ran == [Order(1, [], ORDER.placed, ORDER.ref, ORDER.total)] and (await fine.info()).state == "succeeded"  # type: ignore[union-attr]
    attempt, kind, message = await dead_error(app, wrong_qty)
    assert (attempt, kind) == (1, "ArgumentValidationError")
    assert "argument 'order' is not a valid Order: .items[0].qty: expected int, got str 'two'" in message
    assert "Order is missing its required field(s) 'items', 'placed', 'ref', 'total'" in (await dead_error(app, missing))[2]
    assert "Order has no field 'colour'" in (await dead_error(app, unknown))[2]
    attempt, kind, message = await dead_error(app, bad_model)
    assert (attempt, kind) == (1, "ArgumentValidationError")
    assert "argument 'customer' is not a valid Customer: 3 validation errors for Customer" in message
    assert "size" in message and "place.city" in message
    assert "argument 'color' is not a valid Color: str 'blue' is not a Color (its values: 'red', 'green')" in (
        await dead_error(app, bad_enum))[2]


async def test_with_job_hooks_handlers_get_rebuilt_arguments_and_on_dead_hears_of_a_bad_payload(
    app: fastjobs.App,
) -> None:
    seen: list[Any] = []
    dead: list[BaseException | None] = []
    app.before_job(lambda ctx: None)  # the worker's other path: each job in a contextvars context of its own
    app.on_dead(lambda ctx, outcome: dead.append(outcome.error))

    @app.task(name="typed.hooked_async", max_attempts=5)
    async def hooked_async(item: Item) -> None:
        seen.append(item)

    @app.task(name="typed.hooked_sync")
    def hooked_sync(items: list[Item]) -> None:
        seen.append(items)

    await hooked_async.enqueue(Item("a"))
    await hooked_sync.enqueue([Item("b", 2)])
    await app.enqueue_by_name("typed.hooked_async", args=[{"sku": 1}])
    await run_burst(app)
    assert sorted(map(repr, seen)) == sorted([repr(Item("a")), repr([Item("b", 2)])])
    assert len(dead) == 1 and isinstance(dead[0], fastjobs.ArgumentValidationError)
    assert "argument 'item' is not a valid Item: .sku: expected str, got int 1" in str(dead[0])


async def test_a_plain_task_is_unaffected(app: fastjobs.App) -> None:
    got: list[Any] = []

    @app.task(name="typed.plain")
    async def plain(data: dict[str, Any], n: int) -> dict[str, Any]:
        got.append((data, n))
        return data

    @app.task(name="typed.off", typed=False)
    async def off(order: Order) -> Any:
        got.append(order)
        return order

    assert plain.typed is None and plain.invoke is plain.fn  # nothing runs per job
    assert off.typed is None and off.invoke is off.fn
    handle = await plain.enqueue({"id": "not checked"}, "not an int either")  # type: ignore[arg-type]
    raw = await off.enqueue({"id": 1})  # type: ignore[arg-type]
    with pytest.raises(fastjobs.UnencodableError):
        await off.enqueue(ORDER)  # typed=False: a dataclass is refused, as for any task
    await run_burst(app)
    assert got == [({"id": "not checked"}, "not an int either"), {"id": 1}]
    assert await handle.result(timeout=5) == {"id": "not checked"} and await raw.result(timeout=5) == {"id": 1}


async def test_an_unencodable_value_inside_a_typed_argument_is_refused_at_enqueue(app: fastjobs.App) -> None:
    @app.task(name="typed.refused")
    async def refused(item: Item) -> None: ...

    with pytest.raises(fastjobs.UnencodableError, match="cannot be encoded"):
        await refused.enqueue(Item(object()))  # type: ignore[arg-type]


async def test_a_chain_step_gets_its_parents_typed_result_rebuilt(app: fastjobs.App) -> None:
    @app.task(name="typed.first")
    async def first(n: int) -> Item:
        return Item(f"sku-{n}", n)

    @app.task(name="typed.second")
    async def second(item: Item, times: int) -> int:
        assert isinstance(item, Item)
        return item.qty * times

    handles = await app.chain(first.call(3), second.call(10))
    await run_burst(app)
    assert await handles[-1].result(timeout=5) == 30


async def test_typed_arguments_in_a_process_pool_child(app: fastjobs.App) -> None:
    tasks = typed_app.register(app)
    handle = await tasks["typed.receipt"].enqueue(ORDER, Color.GREEN)
    ctx_handle = await tasks["typed.customer"].enqueue(CUSTOMER)
    bad = await app.enqueue_by_name("typed.customer", args=[{"name": "Ada", "size": 1, "place": {"city": 5}}])
    worker = app.worker(burst=True, handle_signals=False, poll_interval=0.05, process_pool=1, process_app=typed_app.REF)
    await asyncio.wait_for(worker.run(), 60)
    receipt = await handle.result(timeout=5)
    assert receipt["order"] == 7 and receipt["color"] == "green" and receipt["lines"] != os.getpid()  # ran in a child
    assert await ctx_handle.result(timeout=5) == f"{ctx_handle.id}:Paris"
    info = await app.get_job(bad.id)
    assert info is not None and info.state == "dead" and info.attempt == 1 and len(info.errors) == 1  # max_attempts=5
    # The error keeps its type across the process boundary, as on threads and the loop.
    assert info.errors[0].type == "ArgumentValidationError"
    assert "argument 'customer' is not a valid Customer: 2 validation errors for Customer" in info.errors[0].message
