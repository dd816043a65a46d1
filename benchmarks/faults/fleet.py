"""Worker processes the suite starts, signals, kills and always cleans up.

Each worker is ``python -m fastjobs worker benchmarks.faults.workerapp:app``
in a session (process group) of its own, so a signal reaches it alone and a
kill of its group takes whatever it started; ``--processes N`` supervisors
start their children in sessions of their own too, so cleanup also walks
``/proc`` for descendants. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.faults.ledger import Fault, true_time

ROOT = Path(__file__).resolve().parents[2]
APP = "benchmarks.faults.workerapp:app"
READY_TIMEOUT = 30.0


@dataclass
class WorkerProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=true_time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first found through their parent pid)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class Fleet:
    """The worker processes of one scenario, and the faults injected into them.

    Args:
        env: the environment every worker gets (backend URL, prefix, lease, ledger).
        logs: the folder for each worker's output.
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        path = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p)}
        self.logs = logs
        self.workers: list[WorkerProcess] = []
        self.faults: list[Fault] = []
        self._count = 0

    def start(self, concurrency: int = 10, processes: int = 1, grace: float = 5.0, queues: Iterable[str] = (),
              env: dict[str, str] | None = None, wait: bool = True) -> WorkerProcess:
        """Start one worker (or a ``--processes`` supervisor); ``wait``: until it logs that it started."""
        self._count += 1
        name = f"w{self._count}"
        log = self.logs / f"{name}.log"
        argv = [sys.executable, "-m", "fastjobs", "worker", APP, "--concurrency", str(concurrency),
                "--processes", str(processes), "--grace", str(grace)]
        if queues:
            argv += ["--queues", ",".join(queues)]
        with open(log, "wb") as out:
            popen = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(env or {})}, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        worker = WorkerProcess(name, popen, log)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker, expected=processes)
        return worker

    def wait_ready(self, worker: WorkerProcess, expected: int = 1, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.log.read_bytes().count(b"worker started") >= expected:
                return
            if not worker.alive():
                raise RuntimeError(f"worker {worker.name} exited with {worker.popen.returncode}: {self.tail(worker)}")
            time.sleep(0.02)
        raise RuntimeError(f"worker {worker.name} did not start within {timeout} s: {self.tail(worker)}")

    def tail(self, worker: WorkerProcess, lines: int = 5) -> str:
        try:
            return " | ".join(worker.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def signal(self, worker: WorkerProcess, sig: signal.Signals, kind: str | None = None) -> Fault:
        """Send ``sig`` to the worker process alone and record it as a fault."""
        fault = Fault(kind or sig.name, true_time(), worker.pid)
        os.kill(worker.pid, sig)
        self.faults.append(fault)
        return fault

    def kill(self, worker: WorkerProcess) -> Fault:
        """kill -9 the worker, reaped at once (a fault)."""
        fault = self.signal(worker, signal.SIGKILL, "kill -9")
        worker.popen.wait(10)
        return fault

    def wait_exit(self, worker: WorkerProcess, timeout: float) -> int | None:
        try:
            return worker.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, worker: WorkerProcess, timeout: float = 15.0) -> None:
        """SIGTERM (a graceful stop), then kill -9 of its group and descendants if it lingers."""
        if worker.alive():
            try:
                os.kill(worker.pid, signal.SIGCONT)
                os.kill(worker.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(worker, timeout) is None:
                self._kill_tree(worker)
        self._kill_tree(worker)

    def _kill_tree(self, worker: WorkerProcess) -> None:
        pids = descendants(worker.pid) if worker.alive() else []
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            worker.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def close(self, graceful: bool = True) -> None:
        """Stop every worker: SIGTERM to all at once, a bounded wait, then kill -9 what is left."""
        if graceful:
            for w in self.alive():
                try:
                    os.kill(w.pid, signal.SIGCONT)
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        for w in self.workers:
            self._kill_tree(w)

    def worker_pids(self, worker: WorkerProcess) -> list[int]:
        """The pids that run jobs: the worker itself, or a supervisor's children."""
        children = descendants(worker.pid)
        return children or [worker.pid]
