"""fastjobs benchmarks: ``python -m benchmarks`` (end to end) and pytest-benchmark micro-benchmarks."""

import os

URLS = {
    "memory": lambda: "memory://",
    "redis": lambda: os.environ.get("FASTJOBS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "postgres": lambda: os.environ.get("FASTJOBS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
}
"""The server each backend's runs use: ``FASTJOBS_REDIS_URL`` and ``FASTJOBS_DATABASE_URL``
(default: the local servers)."""
