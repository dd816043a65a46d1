"""The operations commands' test bench: an App module for ``fastjobs`` processes to load, a fresh
namespace on a real backend, and a runner that returns what the command printed and its status.

The App's URL and prefix come from the environment (``FASTJOBS_TEST_URL``, memory:// when unset,
so ``--url`` can be tested; ``FASTJOBS_TEST_PREFIX``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.process.cli_ops:app"

app = fastjobs.App(os.environ.get("FASTJOBS_TEST_URL", "memory://"),
                   prefix=os.environ.get("FASTJOBS_TEST_PREFIX", "fastjobs"))


async def echo(text: str) -> str:
    return text


async def boom(text: str) -> None:
    raise ValueError(f"boom: {text}")


def register(target: fastjobs.App) -> tuple[fastjobs.Task[[str], str], fastjobs.Task[[str], None]]:
    """The test tasks, registered on ``target``: ``echo`` succeeds, ``boom`` goes dead at once."""
    return target.task(name="echo")(echo), target.task(name="boom", max_attempts=1)(boom)


register(app)


class Space:
    """A backend URL, a fresh prefix on it, an App of the test's own there, and the CLI on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.app = fastjobs.App(url, prefix=self.prefix)
        self.echo, self.boom = register(self.app)
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = dict(os.environ, PYTHONPATH=path, FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=self.prefix)

    def cli(self, *args: str, env: dict[str, str] | None = None, ok: int | None = 0,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``fastjobs COMMAND APP ARGS...`` (the App inserted after the command)."""
        command, *rest = args
        done = subprocess.run([sys.executable, "-m", "fastjobs", command, APP, *rest], cwd=ROOT,
                              env=env or self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if ok is not None:
            assert done.returncode == ok, (done.returncode, done.stdout, done.stderr)
        if done.returncode == 0 and "--json" not in args:  # text fits 100 columns; JSON is for programs
            assert max(map(len, done.stdout.splitlines()), default=0) <= 100, done.stdout
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def usage_error(self, *args: str) -> str:
        """Run a command that must fail on bad input: exit 2, one line on stderr; return the line."""
        done = self.cli(*args, ok=2)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastjobs: error: "), done.stderr
        return lines[0]

    async def run_worker(self) -> None:
        await self.app.worker(burst=True, handle_signals=False, concurrency=200).run()

    async def dead_and_succeeded(self, dead: int = 2, succeeded: int = 3) -> tuple[list[str], list[str]]:
        """Jobs run by a burst worker: ``dead`` of them failed for good, ``succeeded`` succeeded."""
        failing = await self.app.enqueue_many(
            self.boom.options(tags=["bad", f"n:{i}"]).call(f"x{i}") for i in range(dead))
        fine = await self.app.enqueue_many(self.echo.options(tags=["good"]).call(f"y{i}") for i in range(succeeded))
        await self.run_worker()
        return list(failing.ids), list(fine.ids)


async def space_on(url: str) -> AsyncIterator[Space]:
    space = Space(url)
    try:
        await space.app.backend()  # PostgreSQL: the schema exists before any command runs
        yield space
    finally:
        await space.app.close()
        await wipe_namespace(url, space.prefix)


@pytest.fixture
async def redis_space(redis_url: str) -> AsyncIterator[Space]:
    async for space in space_on(redis_url):
        yield space


@pytest.fixture(params=["redis", "postgres"])
async def any_space(request: pytest.FixtureRequest) -> AsyncIterator[Space]:
    async for space in space_on(str(request.getfixturevalue(f"{request.param}_url"))):
        yield space
