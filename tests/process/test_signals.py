"""Graceful shutdown, tested by sending real signals to a real worker process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).with_name("memory_worker.py")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class WorkerProcess:
    def __init__(self, mode: str, grace: float) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), mode, str(grace)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while sum(line.startswith(prefix) for line in self.lines) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} x {prefix!r} in {self.lines}")
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"worker exited early: {self.lines} {self.proc.stderr.read() if self.proc.stderr else ''}")
            self.lines.append(line.strip())

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float) -> tuple[dict[str, Any], float, str]:
        started = time.monotonic()
        out, err = self.proc.communicate(timeout=timeout)
        elapsed = time.monotonic() - started
        assert self.proc.returncode == 0, err
        self.lines += out.splitlines()
        report = next(line for line in self.lines if line.startswith("REPORT "))
        return json.loads(report[len("REPORT "):]), elapsed, err


def states(report: dict[str, Any]) -> list[str]:
    return [report[str(i)]["state"] for i in range(len(report))]


def test_sigterm_lets_running_sync_jobs_finish_and_releases_waiting_ones() -> None:
    w = WorkerProcess("sync", grace=10)
    w.wait_for("started", 2)
    w.signal(signal.SIGTERM)
    report, _, err = w.finish(timeout=15)
    started = {int(line.split()[1]) for line in w.lines if line.startswith("started")}
    assert len(started) == 2, w.lines  # the two jobs waiting for a thread never started
    for i in range(10):
        job = report[str(i)]
        if i in started:
            assert (job["state"], job["attempt"], job["result"]) == ("succeeded", 1, i)
        else:
            # Given back without using an attempt (prefetched ones) or never claimed.
            assert (job["state"], job["attempt"]) == ("queued", 0), (i, job)
    assert "SIGTERM: stopping" in err


def test_sigterm_lets_running_async_jobs_finish() -> None:
    w = WorkerProcess("async", grace=10)
    w.wait_for("started", 3)
    w.signal(signal.SIGTERM)
    report, elapsed, _ = w.finish(timeout=15)
    assert states(report).count("succeeded") == 3
    assert states(report).count("queued") == 7
    assert elapsed < 8


def test_grace_period_expiry_gives_back_running_async_jobs() -> None:
    w = WorkerProcess("stuck", grace=0.5)
    w.wait_for("started", 3)
    w.signal(signal.SIGTERM)
    report, elapsed, _ = w.finish(timeout=15)
    assert elapsed < 5
    assert [(j["state"], j["attempt"]) for j in report.values()] == [("queued", 0)] * 3


def test_second_signal_skips_the_grace_period() -> None:
    w = WorkerProcess("stuck", grace=60)
    w.wait_for("started", 3)
    w.signal(signal.SIGINT)
    time.sleep(0.3)
    w.signal(signal.SIGINT)
    report, elapsed, err = w.finish(timeout=15)
    assert elapsed < 5
    assert states(report) == ["queued"] * 3
    assert "second SIGINT" in err
