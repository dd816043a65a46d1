"""Uniqueness under concurrent enqueue from several real processes on a shared backend."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastjobs
from fastjobs._core import QUEUED
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_four_processes_enqueueing_the_same_keys_get_one_job_per_key(kind: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    prefix = unique_prefix()
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=prefix)
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.process.unique_enqueuer", "20", str(start_at)],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    seen: dict[str, set[str]] = {}
    for out, _ in outputs:
        for key, ids in json.loads(out).items():
            seen.setdefault(key, set()).update(ids)
    assert len(seen) == 20
    assert all(len(ids) == 1 for ids in seen.values()), seen  # every enqueue of a key got the same job

    async def queued() -> list[str]:
        app = fastjobs.App(url, prefix=prefix)
        try:
            return [j.unique_key or "" for j in await (await app.backend()).list_jobs(QUEUED, limit=1000)]
        finally:
            await app.close()
            await wipe_namespace(url, prefix)

    keys = asyncio.run(queued())
    assert sorted(keys) == sorted(seen)  # 20 jobs stored, one per key, from 400 racing enqueues
