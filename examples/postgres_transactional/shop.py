"""An order and its receipt job in one PostgreSQL transaction: both are committed, or neither.

``python -m postgres_transactional.shop`` (from examples/) places one order that commits and
one that rolls back, then runs the receipts with a burst worker.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
import fastjobs

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

# The jobs live in the application's own database (schema FASTJOBS_PREFIX, "fastjobs" by default).
jobs = fastjobs.App(DATABASE_URL, prefix=os.environ.get("FASTJOBS_PREFIX", "fastjobs"))


@jobs.task(name="shop.send_receipt", queue="receipts")
async def send_receipt(order_id: int) -> str:
    return f"receipt for order {order_id}"


class OutOfStock(Exception):
    """Raised inside the order's transaction: the order and its receipt job roll back."""


async def create_tables(conn: asyncpg.Connection) -> None:
    await conn.execute("""
        CREATE TABLE IF NOT EXISTS stock (item text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));
        CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, item text NOT NULL, quantity int NOT NULL);
    """)


async def place_order(conn: asyncpg.Connection, item: str, quantity: int) -> int:
    """Insert the order, enqueue its receipt and take the stock, in one transaction."""
    async with conn.transaction():
        order_id: int = await conn.fetchval(
            "INSERT INTO orders (item, quantity) VALUES ($1, $2) RETURNING id", item, quantity)
        # connection=conn: the job is written by this transaction, so it commits or rolls back with it.
        await send_receipt.options(connection=conn).enqueue(order_id)
        taken = await conn.execute(
            "UPDATE stock SET available = available - $2 WHERE item = $1 AND available >= $2", item, quantity)
        if taken == "UPDATE 0":
            raise OutOfStock(item)
    return order_id


async def main() -> None:
    async with jobs:  # connects, and creates or upgrades the jobs' schema, before the first enqueue
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await create_tables(conn)
            await conn.execute("INSERT INTO stock VALUES ('tea', 1) ON CONFLICT (item) DO UPDATE SET available = 1")
            print("placed order", await place_order(conn, "tea", 1))
            try:
                await place_order(conn, "tea", 1)
            except OutOfStock:
                print("out of stock: that order and its receipt were rolled back")
        finally:
            await conn.close()
        await jobs.run_worker(["receipts"], burst=True)
        print(await jobs.stats())


if __name__ == "__main__":
    asyncio.run(main())
