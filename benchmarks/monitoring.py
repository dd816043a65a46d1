"""What monitoring costs: end-to-end throughput with Prometheus metrics, OpenTelemetry, or a hook pair on.

Four variants of one run (async no-op jobs enqueued in batches of 1,000 while one worker
runs them, as the main table's end-to-end column), alternated round after round so that
the machine's drift hits each alike; the median of the rounds is reported, with its ratio
to the plain run's median:

* **plain**: nothing on;
* **prometheus**: ``Worker(metrics=True)`` counting, and ``/metrics`` served and scraped
  once a second over HTTP by a process of its own (``benchmarks.scraper``), as Prometheus
  would (needs ``fastjobs[prometheus]``);
* **otel**: ``fastjobs.otel.instrument(app)`` with the SDK and a batch span processor
  whose exporter drops the spans (needs ``fastjobs[otel]`` and ``opentelemetry-sdk``): every
  job's ``send`` and ``process`` spans are recorded;
* **otel-sampled**: the same, sampling 1% of traces (``ParentBased(TraceIdRatioBased(0.01))``),
  as a busy production system would;
* **hooks**: one plain ``def`` ``before_job`` and ``after_job`` hook pair.

Example::

    python -m benchmarks --monitoring                 # memory, 50,000 jobs, 5 rounds
    python -m benchmarks --monitoring --backend redis --jobs 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import fastjobs

from . import URLS

VARIANTS = ("plain", "prometheus", "otel", "otel-sampled", "hooks")


def _otel_provider(ratio: float | None = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider() if ratio is None else TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=1 << 17))  # room: no span dropped
    return provider


async def _start_scraper(port: int, token: str) -> asyncio.subprocess.Process:
    """``benchmarks.scraper`` on the worker's /metrics, in a process of its own (as Prometheus):
    returned once its first scrape answered."""
    scraper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.scraper", f"http://127.0.0.1:{port}/metrics", token,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert scraper.stdout is not None
    line = await asyncio.wait_for(scraper.stdout.readline(), 30)
    if line.strip() != b"ready":
        raise RuntimeError(f"the metrics scraper did not start (it printed {line!r})")
    return scraper


async def _stop_scraper(scraper: asyncio.subprocess.Process) -> int:
    """Stop the scraper; how many scrapes it made (it exits 1 if one failed)."""
    scraper.terminate()
    out, _ = await scraper.communicate()
    if await scraper.wait() != 0:
        raise RuntimeError("a scrape of the worker's /metrics failed")
    return int(out.split()[-1])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_variant(backend: str, variant: str, jobs: int, concurrency: int) -> float:
    """Jobs/s end to end for one variant, on a fresh namespace."""
    app = fastjobs.App(URLS[backend](), prefix="bench" + uuid.uuid4().hex[:8], result_ttl=3600)

    @app.task(name="noop_async", queue="bench")
    async def noop_async() -> None:
        return None

    options: dict[str, Any] = {}
    scraper: asyncio.subprocess.Process | None = None
    provider = None
    if variant == "prometheus":
        port, token = _free_port(), uuid.uuid4().hex
        options.update(metrics_port=port, metrics_token=token)
    elif variant in ("otel", "otel-sampled"):
        from fastjobs import otel

        provider = _otel_provider(0.01 if variant == "otel-sampled" else None)
        otel.instrument(app, tracer_provider=provider)
    elif variant == "hooks":
        @app.before_job
        def before(ctx: fastjobs.Context) -> None:
            ctx.meta.get("tenant")

        @app.after_job
        def after(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
            outcome.seconds  # noqa: B018

    worker = app.worker(["bench"], concurrency=concurrency, handle_signals=False, **options)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0.1)  # connected, waiting (and, with metrics, serving)
    if variant == "prometheus":
        # A process of its own, as a Prometheus server is: the worker pays the server's side of
        # each scrape, not the client's. The clock starts after its first scrape.
        scraper = await _start_scraper(options["metrics_port"], options["metrics_token"])
    started = time.perf_counter()
    for first in range(0, jobs, 1000):
        await app.enqueue_many([noop_async.call() for _ in range(min(1000, jobs - first))])
        await asyncio.sleep(0)
    await worker.wait_acked(jobs)
    elapsed = time.perf_counter() - started
    if scraper is not None:
        await _stop_scraper(scraper)
    worker.request_stop()
    await runner
    if provider is not None:
        provider.shutdown()
    await app.close()
    from tests.backends import wipe_namespace

    await wipe_namespace(app.url, app.options.prefix)
    return jobs / elapsed


@dataclass
class MonitoringResult:
    backend: str
    variant: str
    jobs: int
    end_to_end_per_s: float
    """The median of the rounds."""
    vs_plain: float
    rounds: list[float]


def available(variants: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The variants whose libraries are installed, and a note per one skipped."""
    needs = {"prometheus": ("prometheus_client",), "otel": ("opentelemetry.sdk",),
             "otel-sampled": ("opentelemetry.sdk",)}
    kept, skipped = [], []
    for variant in variants:
        missing = [m for m in needs.get(variant, ()) if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            skipped.append(f"{variant}: skipped, {', '.join(missing)} missing (pip install -e \".[bench]\")")
        else:
            kept.append(variant)
    return tuple(kept), skipped


async def run(backend: str, jobs: int, concurrency: int, rounds: int, variants: tuple[str, ...],
              progress: Callable[[str], None]) -> list[MonitoringResult]:
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else tuple(reversed(variants))  # ABBA: drift hits each alike
        for variant in order:
            rates[variant].append(await run_variant(backend, variant, jobs, concurrency))
            progress(f"{backend} round {r + 1}/{rounds} {variant}: {rates[variant][-1]:,.0f} jobs/s")
    plain = statistics.median(rates["plain"])
    return [MonitoringResult(backend, v, jobs, round(statistics.median(rates[v]), 1),
                             round(statistics.median(rates[v]) / plain, 3), [round(x, 1) for x in rates[v]])
            for v in variants]


def render(results: list[MonitoringResult], rounds: int, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"monitoring cost: async no-op jobs end to end, median of {rounds} alternated rounds, jobs/s",
                  caption="; ".join(notes) or None)
    for col in ("backend", "variant", "jobs", "end-to-end", "vs plain", "rounds"):
        table.add_column(col, justify="left" if col in ("backend", "variant", "rounds") else "right")
    for r in results:
        table.add_row(r.backend, r.variant, f"{r.jobs:,}", f"{r.end_to_end_per_s:,.0f}", f"{r.vs_plain:.2f}",
                      ", ".join(f"{x:,.0f}" for x in r.rounds))
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    console.print(table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --monitoring", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*URLS, "all"], default="memory")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    variants, notes = available(tuple(v for v in args.variants.split(",") if v))
    if "plain" not in variants:
        parser.error("the variants must include plain (the others are compared with it)")
    runner: Callable[[Any], Any] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    quiet = args.json or not os.isatty(2)
    results: list[MonitoringResult] = []
    for backend in (list(URLS) if args.backend == "all" else [args.backend]):
        results += runner(run(backend, args.jobs, args.concurrency, args.rounds, variants,
                              (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))))
    if args.json:
        print(json.dumps({"monitoring": [asdict(r) for r in results], "notes": notes}, indent=2))
    else:
        render(results, args.rounds, notes)
    return 0
