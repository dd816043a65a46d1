"""An app on a shared backend for the CLI process tests (URL and prefix from the environment)."""

import os

import fastjobs

app = fastjobs.App(os.environ["FASTJOBS_TEST_URL"], prefix=os.environ["FASTJOBS_TEST_PREFIX"])


@app.task(name="echo")
async def echo(text: str) -> str:
    return text
