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


# Makes one compiled module unimportable, as in a checkout that was never built.
BROKEN_BUILD = """
import importlib.abc, sys, warnings
class Unbuilt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fastjobs._core._codec_c":
            raise ImportError("no module named 'fastjobs._core._codec_c' (simulated)")
sys.meta_path.insert(0, Unbuilt())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastjobs._core as c
print(c.IMPLEMENTATION, repr(c.IMPORT_ERROR))
for w in caught:
    print(w.category.__name__, w.message)
"""


def broken_build(value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTJOBS_NO_EXTENSIONS"}
    if value is not None:
        env["FASTJOBS_NO_EXTENSIONS"] = value
    out = subprocess.run([sys.executable, "-c", BROKEN_BUILD], capture_output=True, text=True, env=env, check=True)
    return out.stdout.splitlines()


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="the twins are chosen without trying")
def test_a_failed_import_of_the_compiled_core_warns() -> None:
    first, *warned = broken_build(None)
    assert first.startswith("pure ImportError(")
    assert len(warned) == 1, warned
    assert warned[0].startswith("RuntimeWarning fastjobs' compiled core failed to import (ImportError: no module")
    for needed in ("fastjobs._core.IMPORT_ERROR", "build_ext --inplace", "FASTJOBS_NO_EXTENSIONS=1"):
        assert needed in warned[0], needed


def test_no_warning_when_the_twins_are_chosen_on_purpose() -> None:
    assert broken_build("1") == ["pure None"]


def test_a_normal_import_does_not_warn() -> None:
    # The suite runs with filterwarnings=error, so a warning here would fail every test.
    code = "import warnings; warnings.simplefilter('error'); import fastjobs._core"
    subprocess.run([sys.executable, "-c", code], check=True)
