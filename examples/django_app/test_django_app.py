"""The Django example: its views through Django's test clients (the WSGI handler, and the ASGI
one), real commits and rollbacks on a throwaway SQLite database (see conftest.py), and a real worker."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Iterator

import fastjobs
import fastjobs.testing
import pytest
from asgiref.sync import sync_to_async
from django import db
from django.core.management import call_command
from django.test import AsyncClient, Client

from .jobs import jobs
from .models import Order, Product


@pytest.fixture(autouse=True)
async def close_jobs() -> AsyncIterator[None]:
    yield
    await jobs.close()  # this test's event loop's connections, and enqueue_sync's


def seen_by_another_connection(order_id: int) -> bool:
    """Whether a new database connection (another thread's) sees the order: only once committed."""
    seen: list[bool] = []

    def look() -> None:
        try:
            seen.append(Order.objects.filter(pk=order_id).exists())
        finally:
            db.connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return seen[0]


@pytest.fixture
def committed_at_enqueue() -> Iterator[list[bool]]:
    """For each receipt enqueued, whether its order was already committed at that moment."""
    seen: list[bool] = []

    def check(job: fastjobs.Enqueuing) -> None:
        seen.append(seen_by_another_connection(job.args[0]))

    jobs.before_enqueue(check)
    yield seen
    jobs.hooks.remove("before_enqueue", check)


async def product(name: str, stock: int) -> Product:
    return await Product.objects.acreate(name=name, stock=stock)


async def test_wsgi_view_enqueues_after_commit_and_a_worker_runs_the_job(committed_at_enqueue: list[bool]) -> None:
    await product("book", stock=3)
    client = Client()  # the WSGI handler; Django's sync code must not run on the event loop's thread
    async with fastjobs.testing.run_jobs(jobs) as enqueued:
        response = await sync_to_async(client.post)("/orders", {"product": "book", "quantity": 2},
                                                     content_type="application/json")
    assert response.status_code == 201
    order_id = response.json()["order"]
    assert [(job.task, job.args, job.queue) for job in enqueued] == [("shop.send_receipt", (order_id,), "emails")]
    assert committed_at_enqueue == [True]
    info = await jobs.get_job(enqueued[0].id)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", f"receipt for order {order_id}: 2 x book")


async def test_a_rolled_back_order_enqueues_nothing_and_a_committed_one_one_job() -> None:
    await product("lamp", stock=1)
    client = Client()
    post = sync_to_async(client.post)
    with fastjobs.testing.capture_enqueues(jobs) as enqueued:
        # The order is created and on_commit registered, then the stock check rolls it all back.
        refused = await post("/orders", {"product": "lamp", "quantity": 2}, content_type="application/json")
        assert refused.status_code == 409
        assert enqueued == []
        assert not await Order.objects.filter(product__name="lamp").aexists()

        placed = await post("/orders", {"product": "lamp", "quantity": 1}, content_type="application/json")
        assert placed.status_code == 201
    assert [job.args for job in enqueued] == [(placed.json()["order"],)]
    assert await Order.objects.filter(product__name="lamp").acount() == 1
    await jobs.worker(["emails"], burst=True, handle_signals=False).run()


async def test_the_asgi_handler_serves_the_sync_and_the_async_view(committed_at_enqueue: list[bool]) -> None:
    await product("pen", stock=10)
    client = AsyncClient()  # the ASGI handler, in this event loop
    async with fastjobs.testing.run_jobs(jobs) as enqueued:
        placed = await client.post("/orders", {"product": "pen", "quantity": 4}, content_type="application/json")
        assert placed.status_code == 201
        order_id = placed.json()["order"]
        resent = await client.post(f"/orders/{order_id}/receipt")
        assert resent.status_code == 202
        assert (await client.post("/orders/999999/receipt")).status_code == 404
    assert [(job.task, job.args) for job in enqueued] == [("shop.send_receipt", (order_id,))] * 2
    assert resent.json() == {"job_id": enqueued[1].id}
    assert committed_at_enqueue == [True, True]
    for job in enqueued:
        info = await jobs.get_job(job.id)
        assert info is not None
        assert (info.state, info.result) == ("succeeded", f"receipt for order {order_id}: 4 x pen")


def test_the_migrations_match_the_models() -> None:
    call_command("makemigrations", "django_app", "--check", "--dry-run", stdout=io.StringIO())  # exits 1 if not
