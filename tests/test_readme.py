"""The README's quick start works exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# tasks.py\n.*?)```", readme, re.S)
    assert code is not None, "the README lost its quick start"
    (tmp_path / "tasks.py").write_text(code.group(1))
    done = subprocess.run([sys.executable, "tasks.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent to a@b.c"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(python -m pip install .*?)\n```", readme)
    assert len(commands) == 2, commands
    assert "python -m benchmarks" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
