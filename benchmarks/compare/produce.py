"""``python -m benchmarks.compare.produce LIBRARY setup|FIRST COUNT``: run in the library's
virtualenv by the harness; enqueues (or sets up the schema) and prints the times as JSON."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys


def main(argv: list[str]) -> int:
    module = importlib.import_module(f"benchmarks.compare.apps.{argv[0]}_app")
    if argv[1] == "setup":
        call = getattr(module, "setup", None)
        if call is not None and inspect.iscoroutinefunction(call):
            asyncio.run(call())
        elif call is not None:
            call()
        print(json.dumps({"setup": True}))
        return 0
    first, count = int(argv[1]), int(argv[2])
    if inspect.iscoroutinefunction(module.produce):
        started, finished = asyncio.run(module.produce(first, count))
    else:
        started, finished = module.produce(first, count)
    print(json.dumps({"started": started, "finished": finished}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
