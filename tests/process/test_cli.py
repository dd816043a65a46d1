"""The ``fastjobs`` command: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastjobs

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "fastjobs", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"fastjobs {fastjobs.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "nocolon"], "expected MODULE:APP"),
        (["info", "no_such_module_xyz:app"], "cannot import module 'no_such_module_xyz'"),
        (["info", "tests.process.cli_app:missing"], "has no attribute 'missing'"),
        (["info", "tests.process.cli_app:not_an_app"], "is a int, not a fastjobs.App"),
        (["enqueue", "tests.process.cli_app:app", "nope"], "no task named 'nope'"),
        (["enqueue", "tests.process.cli_app:app", "hello", "--args", "[1,"], "--args is not valid JSON"),
        (["enqueue", "tests.process.cli_app:app", "hello", "--args", "{}"], "--args must be a JSON array"),
        (["enqueue", "tests.process.cli_app:app", "hello", "--queue", "bad queue"], "invalid queue name"),
        (["enqueue", "tests.process.cli_app:app", "hello", "--args", '["x"]'], "memory://, which lives inside one process"),
        (["worker", "tests.process.cli_app:app"], "memory://, which lives inside one process"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastjobs: error: "), done.stderr
    assert message in lines[0]


def test_bad_url_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import fastjobs; fastjobs.App('mysql://x')"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "ConfigurationError: unsupported backend URL 'mysql://x'" in done.stderr
