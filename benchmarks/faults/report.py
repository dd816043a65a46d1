"""The suite's output: one table per backend (fits 100 columns), the checks under it, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks.faults.harness import Row

WIDTH = 100


def settle(rows: Sequence[Row], allow_known: set[int]) -> int:
    """Give each row its status; the exit status: 1 if a must-hold failed, unless the row is in
    ``allow_known`` and every failing check of it watches one of issue 12's gaps."""
    failed = False
    for row in rows:
        if row.error is not None:
            row.status = "ERROR"
        elif row.passed:
            row.status = "pass"
        elif row.id in allow_known and all(c.gap for c in row.checks if not c.ok):
            # Only the checks that watch a known gap may fail: a lost job still fails the run.
            row.status = "known"
        else:
            row.status = "FAIL"
        failed |= row.status in ("FAIL", "ERROR")
    return 1 if failed else 0


def _cell(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def render(rows: Sequence[Row], header: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=WIDTH)
    console.print(f"[bold]fastjobs fault injection[/] {header['version']} (core: {header['core']}), "
                  f"{'quick' if header['quick'] else 'full'} run, {header['seconds']:.0f} s")
    for backend in dict.fromkeys(r.backend for r in rows):
        table = Table(title=f"{backend}", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
        for name, justify in (("#", "right"), ("scenario", "left"), ("jobs", "right"), ("faults", "right"),
                              ("lost", "right"), ("dups (expl.)", "right"), ("overlaps", "right"),
                              ("recovery", "right"), ("must hold", "left")):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for row in (r for r in rows if r.backend == backend):
            colour = {"pass": "green", "known": "yellow"}.get(row.status, "red")
            table.add_row(
                str(row.id), row.scenario, f"{row.jobs:,}", str(row.faults), str(row.lost),
                f"{row.duplicates} ({row.explained})", str(row.overlaps), _cell(row.recovery_s, " s"),
                f"[{colour}]{row.status}[/]",
            )
        console.print(table)
        for row in (r for r in rows if r.backend == backend):
            console.print(f"[bold]{row.id} {row.scenario}[/] ({row.seconds:.0f} s): must hold {row.must_hold}",
                          highlight=False)
            if row.error:
                console.print(f"   [red]ERROR[/] {row.error}", highlight=False)
            for c in row.checks:
                mark = "[green]ok[/]" if c.ok else "[red]NO[/]"
                gap = f" [yellow](issue 12 {c.gap})[/]" if c.gap and not c.ok else ""
                console.print(f"   {mark} {c.name}: {c.detail}{gap}", highlight=False)
            for note in row.notes:
                console.print(f"   [dim]{note.rstrip()}[/]", highlight=False)
        console.print()


def to_json(rows: Sequence[Row], header: dict[str, Any]) -> str:
    return json.dumps({**header, "rows": [r.to_json() for r in rows]}, indent=2)
