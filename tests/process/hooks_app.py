"""An App with hooks for tests/process/test_hooks_processes.py: every hook appends a line to $HOOKS_LOG."""

import os

import fastjobs

app = fastjobs.App(prefix=os.environ.get("HOOKS_PREFIX", "fastjobs"), lease=5.0)
LOG = os.environ.get("HOOKS_LOG", os.devnull)


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\n")


@app.on_worker_start
async def start(state: fastjobs.WorkerState) -> None:
    if os.environ.get("HOOKS_BREAK"):
        raise ConnectionRefusedError("the database said no")
    state.greeting = "hi"
    note(f"start {os.getpid()}")


@app.on_worker_stop
def stop(state: fastjobs.WorkerState) -> None:
    note(f"stop {os.getpid()}")


@app.before_job
def before(ctx: fastjobs.Context) -> None:
    note(f"before {ctx.job_id}")


@app.after_job
def after(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
    note(f"after {ctx.job_id} {outcome.status}")


@app.on_dead
def dead(ctx: fastjobs.Context, outcome: fastjobs.JobOutcome) -> None:
    note(f"dead {ctx.job_id} {type(outcome.error).__name__}")


@app.task(name="greet")
def greet(name: str) -> str:
    return f"{fastjobs.worker_state().greeting} {name}"


@app.task(name="fail", max_attempts=1)
async def fail() -> None:
    raise ValueError("no luck")
