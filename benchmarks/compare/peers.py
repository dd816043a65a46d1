"""The libraries compared, as one table: what to install, how each one's worker is started, and
the configuration the table prints beside its figures.

Each peer is configured as its documentation suggests for throughput: its bulk enqueue API
where it has one (else its plain enqueue, awaited 100 at once where it is async), a
concurrency of at least 16 where it has one, results not stored where that is optional, and
per-job logging off (WARNING) for every library alike.

Pins: the versions current on PyPI on 2026-12-07 that install on Python 3.11 and ran here
against Redis 7.0 and PostgreSQL 15. Each peer gets a virtualenv of its own: arq 0.28
requires redis<6 while celery[redis] 5.7 (kombu) requires redis>=6.4, so no single
environment holds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

APPS = "benchmarks.compare.apps"


@dataclass(frozen=True)
class Peer:
    """One library in the comparison.

    Args:
        name: as given to ``--peers``; its app module is ``benchmarks.compare.apps.<name>_app``.
        backends: the servers it runs on here (``redis``, ``postgres``).
        requirements: what ``pip install`` puts into its virtualenv; empty for fastjobs,
            which runs in the harness's own interpreter.
        distribution: the distribution whose version the table shows.
        configuration: how it is set up, printed beside its figures.
        worker: the worker's command line, given the interpreter (scripts beside it) and the
            server's URL.
    """

    name: str
    backends: tuple[str, ...]
    requirements: tuple[str, ...]
    distribution: str
    configuration: str
    worker: Callable[[Path, str], list[str]]


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("fastjobs", ("redis", "postgres"), (), "fastjobs",
         "enqueue_many x1000; concurrency 100",
         lambda py, url: [str(py), "-m", "fastjobs", "worker", f"{APPS}.fastjobs_app:app",
                           "--concurrency", "100", "--log-level", "WARNING"]),
    Peer("celery", ("redis",), ("celery[redis]==5.7.0",), "celery",
         "apply_async, one producer; threads 16, prefetch x64, results off",
         lambda py, url: [str(py.parent / "celery"), "-A", f"{APPS}.celery_app", "worker", "--pool", "threads",
                           "--concurrency", "16", "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "--loglevel", "WARNING", "--queues", "compare"]),
    Peer("dramatiq", ("redis",), ("dramatiq[redis]==2.2.1",), "dramatiq",
         "send; 1 process x 16 threads, no result backend",
         lambda py, url: [str(py.parent / "dramatiq"), f"{APPS}.dramatiq_app", "--processes", "1", "--threads", "16",
                           "--queues", "compare"]),
    Peer("rq", ("redis",), ("rq==2.12.0",), "rq",
         "enqueue_many x1000, result_ttl 0; SimpleWorker",
         lambda py, url: [str(py.parent / "rq"), "worker", "compare", "--url", url, "--worker-class",
                           "rq.worker.SimpleWorker", "--logging_level", "WARNING", "--disable-job-desc-logging"]),
    Peer("arq", ("redis",), ("arq==0.28.0",), "arq",
         "enqueue_job, 100 awaited at once; max_jobs 100, keep_result 0",
         lambda py, url: [str(py.parent / "arq"), f"{APPS}.arq_app.WorkerSettings",
                           "--custom-log-dict", f"{APPS}.arq_app.LOGGING"]),
    Peer("saq", ("redis", "postgres"), ("saq[redis,postgres]==0.26.4", "psycopg[binary]"), "saq",
         "enqueue, 100 awaited at once, ttl -1; concurrency 100",
         lambda py, url: [str(py.parent / "saq"), f"{APPS}.saq_app.settings", "--workers", "1"]),
    Peer("huey", ("redis",), ("huey==3.5.4", "redis"), "huey",
         "task call; 16 threads, results off",
         lambda py, url: [str(py.parent / "huey_consumer"), f"{APPS}.huey_app.huey", "--worker-type", "thread",
                           "--workers", "16", "--quiet"]),
    Peer("pgqueuer", ("postgres",), ("pgqueuer[asyncpg]==1.6.0",), "pgqueuer",
         "enqueue lists x1000; pgqueuer.run, batch size 100",
         lambda py, url: [str(py), "-m", f"{APPS}.pgqueuer_app"]),
    Peer("procrastinate", ("postgres",), ("procrastinate==3.10.0", "psycopg[binary]"), "procrastinate",
         "batch_defer_async x1000; concurrency 16",
         lambda py, url: [str(py.parent / "procrastinate"), "--app", f"{APPS}.procrastinate_app.app", "--log-level",
                           "warning", "worker", "--concurrency", "16"]),
)}


def install_hint(peer: Peer, venv: Path, reason: str = "not installed") -> str:
    """The one line printed for a peer that is skipped: why, and how to install it."""
    reason = " ".join(reason.split())  # a pip error's lines, on one line
    return (f"skipped {peer.name}: {reason} in {venv}; install it with "
            f"`python -m benchmarks --compare --peers {peer.name}` (without --no-install), or "
            f"`python -m venv {venv} && {venv}/bin/pip install {' '.join(repr(r) if '[' in r else r for r in peer.requirements)}`")
