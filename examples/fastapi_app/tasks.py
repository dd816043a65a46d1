"""The jobs: what ``fastjobs worker fastapi_app.tasks:jobs`` imports (it needs no FastAPI)."""

from __future__ import annotations

import os

import fastjobs

# A worker in another process runs the jobs, so they live in Redis (memory:// is one process's).
jobs = fastjobs.App(os.environ.get("FASTJOBS_URL", "redis://127.0.0.1:6379/0"),
                    prefix=os.environ.get("FASTJOBS_PREFIX", "fastjobs"))


@jobs.task(name="emails.welcome", queue="emails", max_attempts=5)
async def send_welcome_email(to: str, name: str) -> str:
    # Your mail client here; what the handler returns is the job's result.
    return f"welcome email sent to {name} <{to}>"
