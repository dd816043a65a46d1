"""``python -m benchmarks --dashboard-open``'s watcher: one dashboard, open in one browser, on the run's namespace.

``python -m benchmarks.dashboard_watch URL PREFIX`` serves ``fastjobs.web.create_app``
with uvicorn on a free 127.0.0.1 port and acts as a browser on the Overview page
does: its WebSocket receives the live events (the dashboard's one backend
subscription), and each message schedules a refresh, at most one a second, of
``api/stats`` (plus ``api/history/series?range=1h`` every 10 s), as ``app.js``
and ``pages-overview.js`` do. It prints ``ready`` once the subscription is live,
and on SIGTERM one JSON line: events received, refreshes made, their median
time in milliseconds, and the CPU seconds the dashboard process used in how many
seconds of wall time. It runs in its own process, as a dashboard would, so the
CPU it takes on this machine counts against the benchmark's figures.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import statistics
import sys
import time

TOKEN = "benchmark-token"
REFRESH_EVERY = 1.0
CHART_EVERY = 10.0
SETTLE = 1.5
"""Seconds after the WebSocket opens before ``ready``: the hub subscribes on the first client."""


async def watch(url: str, prefix: str) -> dict[str, float]:
    import httpx
    import uvicorn
    from websockets.asyncio.client import connect

    import fastjobs
    from fastjobs.web import create_app

    began = time.monotonic()
    app = fastjobs.App(url, prefix=prefix)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(app, token=TOKEN), log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    events = messages = 0
    times: list[float] = []
    due = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/", headers=headers) as client, \
                connect(f"ws://127.0.0.1:{port}/api/events", additional_headers=headers) as ws:

            async def receive() -> None:
                nonlocal events, messages
                async for message in ws:
                    messages += 1
                    events += len(json.loads(message)["events"])
                    due.set()

            async def refresh() -> None:
                chart_at = 0.0
                while True:
                    await due.wait()
                    due.clear()
                    started = time.perf_counter()
                    calls = [client.get("api/stats")]
                    if started - chart_at > CHART_EVERY:
                        chart_at = started
                        calls.append(client.get("api/history/series", params={"range": "1h"}))
                    for response in await asyncio.gather(*calls):
                        response.raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(max(0.0, REFRESH_EVERY - (time.perf_counter() - started)))

            await asyncio.sleep(SETTLE)
            print("ready", flush=True)
            tasks = [asyncio.ensure_future(receive()), asyncio.ensure_future(refresh())]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.should_exit = True
        await serving
        await app.close()
    return {"events": events, "messages": messages, "refreshes": len(times),
            "refresh_median_ms": round(statistics.median(times), 2) if times else 0.0,
            "cpu_s": round(time.process_time(), 2), "wall_s": round(time.monotonic() - began, 2)}


def main() -> int:
    url, prefix = sys.argv[1:3]
    print(json.dumps(asyncio.run(watch(url, prefix))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
