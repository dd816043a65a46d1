"""The App that deploy/'s image, units and manifests run as ``tasks:app``: a stand-in for yours.

Replace this file (and the Dockerfile's ``COPY`` of it) with your own code; keep the App's
URL in ``FASTJOBS_URL`` so that one image runs against any backend.

Example::

    FASTJOBS_URL=redis://127.0.0.1:6379/0 fastjobs worker tasks:app --processes 2
"""

from __future__ import annotations

import os

import fastjobs

# FASTJOBS_URL picks the backend (App() reads it); FASTJOBS_PREFIX lets several apps, or a
# CI smoke run, share one Redis or PostgreSQL database.
app = fastjobs.App(prefix=os.environ.get("FASTJOBS_PREFIX", "fastjobs"))


@app.task(queue="default")
async def echo(text: str) -> str:
    """Return ``text``: the job ci/dockerfile_smoke.sh runs through the image's worker."""
    return text
