"""One library's run: enqueue all, drain with one worker process, then end to end; every
completion counted in the records file (:mod:`benchmarks.compare.records`).

The harness only starts processes and watches a file, so each library runs under its own
interpreter and its own CLI, and none of them needs the others' packages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .apps import URL_ENV
from .peers import Peer
from .records import RECORDS_ENV, check_exactly_once, count_records

REPO = Path(__file__).resolve().parents[2]
POLL_S = 0.002
"""How often the records file is looked at: an os.stat every 2 ms costs the worker next to
nothing and puts at most 2 ms on either end of a timed span."""
STOP_GRACE_S = (10.0, 20.0)
MIN_SPAN_S = 0.02
"""A drain shorter than this (ten polls) is not given a rate: the polls' 2 ms would be most of it."""


class RunFailed(Exception):
    """A phase of a run did not finish: the worker died, a phase timed out, the producer failed."""


@dataclass
class RunResult:
    """One library on one backend, one round.

    The drain rate is timed from the first job's completion to the last (``jobs - 1`` jobs in
    that span), so the worker process's start (imports, connecting; ``worker_start_s``) is
    not counted against it; end to end is timed from the first enqueue to the last completion
    while the worker, already running and idle, takes the jobs as they come.
    """

    library: str
    version: str
    backend: str
    configuration: str
    jobs: int
    enqueue_per_s: float = float("nan")
    drain_per_s: float = float("nan")
    end_to_end_per_s: float = float("nan")
    worker_start_s: float = float("nan")
    """From the worker's launch to the first job's completion."""
    recorded: int = 0
    duplicates: int = 0
    missing: int = 0
    malformed: int = 0
    exactly_once: bool = False
    stopped: str = ""
    error: str = ""
    note: str = ""
    log: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exactly_once and not self.error

    def check_text(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if self.exactly_once:
            return "ok"
        parts = [f"{n:,} {what}" for n, what in ((self.duplicates, "duplicate"), (self.missing, "missing"),
                                                  (self.malformed, "malformed")) if n]
        return "FAILED: " + ", ".join(parts)


def _environment(url: str, records: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env[URL_ENV] = url
    env[RECORDS_ENV] = str(records)
    return env


def _produce(python: Path, peer: Peer, args: list[str], env: dict[str, str], timeout: float) -> dict[str, float]:
    done = subprocess.run([str(python), "-m", "benchmarks.compare.produce", peer.name, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RunFailed(f"producer {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _wait_for(records: Path, target: int, worker: subprocess.Popen[bytes], deadline: float) -> tuple[float, float]:
    """Wait until ``target`` records are in; return when the first (of this wait) and the last landed."""
    first = None
    start_count = count_records(str(records))
    while True:
        n = count_records(str(records))
        now = time.time()
        if first is None and n > start_count:
            first = now
        if n >= target:
            return first or now, now
        if worker.poll() is not None:
            raise RunFailed(f"the worker exited ({worker.returncode}) after {n:,} of {target:,} records")
        if now > deadline:
            raise RunFailed(f"timed out with {n:,} of {target:,} records")
        time.sleep(POLL_S)


def _stop(worker: subprocess.Popen[bytes]) -> str:
    """SIGTERM the worker, a second SIGTERM if it is still up after a while (Celery, RQ and Huey
    take the second as "now"), SIGKILL to its process group if it hangs on."""
    if worker.poll() is not None:
        return f"had exited ({worker.returncode})"
    how = ""
    for attempt, grace in enumerate(STOP_GRACE_S):
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(grace)
            how = f"clean (exit {code})" if attempt == 0 else f"exit {code} on a second SIGTERM"
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        how = f"killed: no exit {sum(STOP_GRACE_S):.0f} s after SIGTERM"
    try:
        # The worker was started in a session of its own: whatever it forked and left behind
        # (a dramatiq child, a pool) is in that process group.
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait()
    return how


def run_one(peer: Peer, python: Path, version: str, backend: str, url: str, jobs: int, timeout: float,
            workdir: Path) -> RunResult:
    """Enqueue ``jobs``, drain them with one worker, then ``jobs`` more end to end; check exactly-once."""
    result = RunResult(peer.name, version, backend, peer.configuration, jobs)
    records = workdir / f"{peer.name}-{backend}.records"
    records.unlink(missing_ok=True)
    records.touch()
    env = _environment(url, records)
    log_path = workdir / f"{peer.name}-{backend}.log"
    result.log = str(log_path)
    worker: subprocess.Popen[bytes] | None = None
    try:
        _produce(python, peer, ["setup"], env, timeout)
        enqueued = _produce(python, peer, ["0", str(jobs)], env, timeout)
        result.enqueue_per_s = jobs / (enqueued["finished"] - enqueued["started"])
        with open(log_path, "wb") as log:
            launched = time.time()
            worker = subprocess.Popen(peer.worker(python, url), env=env, cwd=REPO, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        first, last = _wait_for(records, jobs, worker, time.time() + timeout)
        result.worker_start_s = first - launched
        result.extra["drain_span_s"] = last - first
        if last - first >= MIN_SPAN_S:
            result.drain_per_s = (jobs - 1) / (last - first)
        else:
            result.note = f"drain took under {MIN_SPAN_S * 1000:.0f} ms: too short to time, use more --jobs"
        producer = subprocess.Popen([str(python), "-m", "benchmarks.compare.produce", peer.name, str(jobs), str(jobs)],
                                    env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, last = _wait_for(records, 2 * jobs, worker, time.time() + timeout)
        finally:
            out, err = producer.communicate(timeout=timeout)
        if producer.returncode != 0:
            raise RunFailed(f"producer exited {producer.returncode}: {err.strip()[-400:]}")
        second = json.loads(out.strip().splitlines()[-1])
        result.end_to_end_per_s = jobs / (last - second["started"])
        result.extra["enqueue_while_running_per_s"] = jobs / (second["finished"] - second["started"])
    except (RunFailed, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        result.error = str(exc)
    finally:
        if worker is not None:
            result.stopped = _stop(worker)
    check = check_exactly_once(str(records), 2 * jobs)
    result.recorded, result.duplicates, result.missing, result.malformed = (
        check.recorded, check.duplicates, check.missing, check.malformed)
    result.exactly_once = check.ok
    return result
