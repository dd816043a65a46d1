"""A virtualenv per peer, created on demand under the user's cache folder (``--venv-dir``).

Why one per peer: arq 0.28 and celery[redis] 5.7 need redis-py versions that do not
overlap, and a peer's pins must not move the fastjobs environment's own packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .peers import Peer

STAMP = ".fastjobs-compare"
"""A file in each virtualenv holding the requirements it was made with: a changed pin remakes it."""


def default_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastjobs-compare"


def interpreter(peer: Peer, root: Path, install: bool, say: Callable[[str], None]) -> tuple[Path | None, str]:
    """The Python to run ``peer`` with, and why there is none (``""`` when there is one).

    fastjobs runs in this interpreter; a peer in ``root/<name>``, created and filled with
    ``pip install`` when missing or made with other pins (unless ``install`` is false).
    """
    if not peer.requirements:
        return Path(sys.executable), ""
    venv = root / peer.name
    python = venv / "bin" / "python"
    wanted = "\n".join(peer.requirements)
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python, ""
    if not install:
        return None, "not installed"
    say(f"installing {' '.join(peer.requirements)} into {venv} (once)")
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"python -m venv failed: {made.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          *peer.requirements], capture_output=True, text=True)
    if pip.returncode != 0:
        return None, f"pip install failed: {pip.stderr.strip()[-300:]}"
    stamp.write_text(wanted)
    return python, ""


def version(peer: Peer, python: Path) -> str:
    """The installed version of the peer's distribution, as its interpreter sees it."""
    out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({peer.distribution!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"
