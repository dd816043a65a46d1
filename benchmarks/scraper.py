"""``python -m benchmarks.scraper URL TOKEN``: scrape a worker's ``/metrics`` once a second from a
process of its own, as a Prometheus server does, for the monitoring benchmark's *prometheus* row.

Prints ``ready`` after its first scrape (the benchmark starts its clock then), scrapes every
second after it, and on SIGTERM (or stdin closed) prints how many scrapes it made and exits.
A scrape that fails exits 1 with the reason. The worker pays the server's side of each scrape
(rendering the metrics and answering); the client's side is not the worker's, as in production.
"""

from __future__ import annotations

import signal
import sys
import threading
import urllib.request


def main(argv: list[str]) -> int:
    url, token = argv
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    scrapes = 0
    while not stop.is_set():
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except OSError as exc:
            print(f"scrape failed: {exc}", file=sys.stderr)
            return 1
        scrapes += 1
        if scrapes == 1:
            print("ready", flush=True)
        stop.wait(1.0)
    print(scrapes, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
