"""Apps for the CLI tests."""

import fastjobs

app = fastjobs.App("memory://")
not_an_app = 42


@app.task(name="hello")
async def hello(name: str) -> str:
    return f"hello {name}"
