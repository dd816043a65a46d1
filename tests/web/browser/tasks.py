"""The App the browser tests' processes load (``fastjobs web`` and ``fastjobs worker``): the backend
URL and prefix come from the environment (``FASTJOBS_TEST_URL``, ``FASTJOBS_TEST_PREFIX``).

The test process registers the same tasks on an App of its own (:func:`register`) to enqueue.
"""

from __future__ import annotations

import asyncio
import os
from typing import NamedTuple

import fastjobs


class Tasks(NamedTuple):
    send_email: fastjobs.Task[[str], str]
    build_report: fastjobs.Task[[str], str]
    resize_image: fastjobs.Task[[str], None]


async def send_email(to: str) -> str:
    await asyncio.sleep(0.02)
    return f"sent to {to}"


async def build_report(flag: str) -> str:
    """Fails while the file ``flag`` does not exist: dead at first, succeeds when retried after the
    test has created it."""
    if not os.path.exists(flag):
        raise FileNotFoundError(f"report input missing: {flag}")
    return "report built"


async def resize_image(path: str) -> None:
    """Always fails, with its argument as the message."""
    raise ValueError(path)


def register(target: fastjobs.App) -> Tasks:
    return Tasks(
        target.task(name="emails.send")(send_email),
        target.task(name="reports.build", max_attempts=1)(build_report),
        target.task(name="images.resize", max_attempts=1)(resize_image),
    )


app = fastjobs.App(os.environ.get("FASTJOBS_TEST_URL", "memory://"),
                   prefix=os.environ.get("FASTJOBS_TEST_PREFIX", "fastjobs"))
register(app)


@app.periodic("0 3 * * *", name="reports.nightly")
async def nightly() -> None:
    """Shown on the Periodic page (never due while a test runs)."""
