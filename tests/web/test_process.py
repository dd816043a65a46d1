"""``fastjobs web`` as a process: binds 127.0.0.1, prints the URL and a generated token apart,
answers the API with that token and refuses without it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends import unique_prefix


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app_module(tmp_path: Path) -> Path:
    (tmp_path / "webapp.py").write_text(
        "import fastjobs\n"
        f"app = fastjobs.App('memory://', prefix={unique_prefix()!r})\n"
        "@app.task(name='webapp.hello', queue='hello')\n"
        "async def hello() -> None: ...\n"
    )
    return tmp_path


@pytest.fixture
def started(app_module: Path, redis_url: str) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FASTJOBS_WEB_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastjobs", "web", "webapp:app", "--url", redis_url, "--port", str(port),
         "--log-level", "WARNING"],
        cwd=app_module, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while len(lines) < 2:
            line = proc.stdout.readline()
            assert line, f"fastjobs web exited: {''.join(lines)}"
            lines.append(line)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                time.sleep(0.05)
        yield proc, port, lines
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_fastjobs_web_prints_the_url_and_a_token_and_guards_the_api(
    started: tuple[subprocess.Popen[str], int, list[str]],
) -> None:
    proc, port, lines = started
    assert lines[0].strip() == f"fastjobs dashboard: http://127.0.0.1:{port}/"
    match = re.search(r"token \(.*\): (\S+)$", lines[1].strip())
    assert match, lines
    token = match.group(1)
    assert len(token) >= 32 and token not in lines[0]
    base = f"http://127.0.0.1:{port}"
    r = httpx.get(f"{base}/api/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and "queues" in r.json()
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert httpx.get(f"{base}/api/stats", timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/stats", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    r = httpx.get(f"{base}/", timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # Bound to the loopback address only.
    try:
        outside = socket.gethostbyname(socket.gethostname())
    except OSError:
        outside = "127.0.0.1"
    if not outside.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=1).close()


def test_fastjobs_web_refuses_memory_urls(app_module: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fastjobs", "web", "webapp:app"], cwd=app_module,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "memory://" in done.stderr
