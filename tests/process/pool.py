"""Run ``fastjobs worker --processes N`` on a test app and stop it with SIGTERM, as an operator would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PoolRun:
    stderr: str = ""
    returncode: int | None = None


def pool_env(url: str, prefix: str, runs: Path) -> dict[str, str]:
    """The environment the test apps read: backend URL, key prefix, and the file their jobs append to."""
    return dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=prefix,
                FASTJOBS_TEST_RUNS=str(runs))


@contextlib.contextmanager
def worker_pool(app: str, env: dict[str, str], *args: str) -> Iterator[PoolRun]:
    """A supervised pool of workers for the block; SIGTERM at its end, then its stderr and exit code."""
    run = PoolRun()
    pool = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "worker", app, *args],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield run
        pool.send_signal(signal.SIGTERM)
        _, run.stderr = pool.communicate(timeout=30)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
        run.returncode = pool.returncode
