"""Builds fastjobs' Cython extensions; all metadata lives in pyproject.toml.

Environment:
    FASTJOBS_NO_EXTENSIONS=1   build no extension (the pure-Python twins are used);
                               the same variable forces the twins at import time.
    FASTJOBS_DEBUG_BUILD=1     compile with line tracing (coverage, profilers) and
                               assertions on.
    FASTJOBS_REQUIRE_EXTENSIONS=1  fail instead of building a wheel without them
                               (set by the wheel builds: a wheel must never ship
                               the twins alone).
"""

from __future__ import annotations

import os
import sys

from setuptools import Distribution, Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("FASTJOBS_NO_EXTENSIONS") or sys.implementation.name != "cpython"
DEBUG = _flag("FASTJOBS_DEBUG_BUILD")
REQUIRE = _flag("FASTJOBS_REQUIRE_EXTENSIONS")

MODULES = ("_heap_c", "_codec_c", "_states_c", "_step_c", "_store_c", "_enqueue_c")
MODULES += ("_hooks_c",)


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        if REQUIRE:
            raise SystemExit("FASTJOBS_REQUIRE_EXTENSIONS is set but extensions are disabled")
        return []
    from Cython.Build import cythonize

    macros: list[tuple[str, str | None]] = []
    if DEBUG:
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    else:
        macros += [("NDEBUG", None)]
    if sys.platform == "win32":
        compile_args = ["/O2"]
    else:
        # -g0 overrides the -g in CPython's own CFLAGS: debug info was most of the
        # wheel (the three .so files: 4.1 MB with it, 0.7 MB without; the wheel 1.7 / 0.4 MB).
        compile_args = ["-O3", "-g0", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
        if DEBUG:
            compile_args = ["-O0", "-g", "-Wall", "-Wno-unused-function"]
    exts = [
        Extension(
            f"fastjobs._core.{name}",
            [f"src/_core/{name}.pyx"],
            define_macros=macros,
            extra_compile_args=compile_args,
        )
        for name in MODULES
    ]
    directives = {
        "language_level": "3",
        "embedsignature": True,
        "boundscheck": DEBUG,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": DEBUG,
    }
    if DEBUG:
        directives.update({"linetrace": True, "profile": True})
    return cythonize(exts, compiler_directives=directives, annotate=DEBUG)


class PlatformDistribution(Distribution):
    """Tags every wheel for its interpreter and platform, even one built without extensions.

    A wheel built with FASTJOBS_NO_EXTENSIONS would otherwise be ``py3-none-any``:
    uploaded by mistake, installers would prefer it to the sdist on every platform
    that has no compiled wheel, and those hosts would silently run the twins.
    """

    def has_ext_modules(self) -> bool:
        return True


setup(ext_modules=extensions(), distclass=PlatformDistribution)
