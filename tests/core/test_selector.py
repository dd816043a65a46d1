"""The selector in ``fastjobs._core``: compiled in a normal install, twins on request."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys

import pytest

import fastjobs
import fastjobs._core as core

PROBE = (
    "import json, fastjobs._core as c, fastjobs; "
    "print(json.dumps([c.IMPLEMENTATION, c.MODULES, fastjobs.core_implementation(), "
    "type(c.PriorityIndex()).__module__]))"
)


def probe(value: str | None) -> list[object]:
    env = {k: v for k, v in os.environ.items() if k != "FASTJOBS_NO_EXTENSIONS"}
    if value is not None:
        env["FASTJOBS_NO_EXTENSIONS"] = value
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    result: list[object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(core.NO_EXTENSIONS, reason="FASTJOBS_NO_EXTENSIONS is set for this run")
def test_a_normal_install_loads_the_compiled_modules() -> None:
    assert core.IMPLEMENTATION == "compiled", f"compiled core failed to import: {core.IMPORT_ERROR}"
    assert fastjobs.core_implementation() == "compiled"
    for piece, name in core.MODULES.items():
        module = sys.modules[name]
        assert name.endswith("_c"), piece
        suffix = os.path.basename(module.__file__ or "")
        assert any(suffix.endswith(ext) for ext in importlib.machinery.EXTENSION_SUFFIXES), (piece, module.__file__)
    assert type(core.PriorityIndex()).__module__ == "fastjobs._core._heap_c"


@pytest.mark.skipif(core.NO_EXTENSIONS, reason="FASTJOBS_NO_EXTENSIONS is set for this run")
@pytest.mark.parametrize("value", [None, "", "0"])
def test_unset_empty_or_zero_means_compiled(value: str | None) -> None:
    kind, modules, public, heap_module = probe(value)
    assert kind == public == "compiled"
    assert heap_module == "fastjobs._core._heap_c"
    assert all(str(m).endswith("_c") for m in dict(modules).values())  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1", "yes"])
def test_the_env_switch_selects_every_twin(value: str) -> None:
    kind, modules, public, heap_module = probe(value)
    assert kind == public == "pure"
    assert heap_module == "fastjobs._core._heap_py"
    assert all(str(m).endswith("_py") for m in dict(modules).values())  # type: ignore[arg-type]
