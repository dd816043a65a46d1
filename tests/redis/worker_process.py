"""A worker in a process of its own, for the kill -9 test.

``python -m tests.redis.worker_process <url> <prefix> <lease> <concurrency>``
runs a worker whose ``fj.test.sleepy`` task sleeps a minute, so its jobs are
still running when the test kills the process with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

import fastjobs


def main() -> None:
    url, prefix, lease, concurrency = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    app = fastjobs.App(url, prefix=prefix, lease=lease)

    @app.task(name="fj.test.sleepy")
    async def sleepy(n: int) -> int:
        await asyncio.sleep(60)
        return n

    asyncio.run(app.run_worker(["default"], concurrency=concurrency))


if __name__ == "__main__":
    main()
