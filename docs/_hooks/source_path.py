"""MkDocs hook: let mkdocstrings find the ``fastjobs`` package's source.

The package is ``src/`` under its import name (``package-dir = {fastjobs = "src"}``), and
griffe looks for a folder named after the package: in an editable install it follows
setuptools' mapping to ``src``'s parent and finds no ``fastjobs/`` there. So before the
handler starts, a temporary folder holding a ``fastjobs`` link to ``src/`` goes first on
``sys.path``, where the handler searches (static analysis: the source is read, not run).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

SRC = Path(__file__).resolve().parents[2] / "src"
_folder: str | None = None


@event_priority(100)  # before mkdocstrings reads sys.path
def on_config(config: Any) -> Any:
    global _folder
    if _folder is None:
        _folder = tempfile.mkdtemp(prefix="fastjobs-docs-")
        try:
            os.symlink(SRC, Path(_folder) / "fastjobs", target_is_directory=True)
        except OSError:  # no symlinks (Windows without the privilege): a copy of the sources
            shutil.copytree(SRC, Path(_folder) / "fastjobs", ignore=shutil.ignore_patterns("*.c", "*.html"))
        sys.path.insert(0, _folder)
    return config


def on_shutdown() -> None:
    global _folder
    if _folder is not None:
        with_link = Path(_folder) / "fastjobs"
        if with_link.is_symlink():
            with_link.unlink()
        shutil.rmtree(_folder, ignore_errors=True)
        if _folder in sys.path:
            sys.path.remove(_folder)
        _folder = None
