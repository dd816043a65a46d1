"""Check an installed fastjobs: imported from site-packages, compiled core loaded, data files present.

Run it with the interpreter of the environment under test, from a directory that
holds no ``fastjobs`` package. It prints where everything came from, so the CI log
shows which fastjobs the tests that follow imported.

Usage:
    python ci/check_installed.py            # a wheel, or an sdist built with a compiler
    python ci/check_installed.py --any-core # the pure twins are acceptable too
"""

from __future__ import annotations

import sys
import sysconfig
from importlib import metadata, resources
from pathlib import Path


def main(argv: list[str]) -> int:
    import fastjobs
    import fastjobs._core as core

    location = Path(fastjobs.__file__).resolve().parent
    print(f"fastjobs {fastjobs.__version__} imported from {location}")
    print(f"fastjobs._core: {core.IMPLEMENTATION} {core.MODULES}")
    for name in core.MODULES.values():
        print(f"  {name}: {sys.modules[name].__file__}")

    problems: list[str] = []
    site_dirs = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    if not any(location.is_relative_to(site) for site in site_dirs):
        problems.append(f"fastjobs was imported from {location}, not from {sorted(map(str, site_dirs))}")
    if metadata.version("fastjobs") != fastjobs.__version__:
        problems.append(f"installed metadata says {metadata.version('fastjobs')}, fastjobs.__version__ {fastjobs.__version__}")
    if core.IMPLEMENTATION != "compiled" and "--any-core" not in argv:
        problems.append(f"the compiled core is not loaded: {core.IMPORT_ERROR or 'FASTJOBS_NO_EXTENSIONS is set'}")

    # The backends read these through importlib.resources; a wheel without them
    # imports fine and fails only when a Redis or PostgreSQL backend connects.
    package = resources.files("fastjobs")
    for folder, suffix in (("lua", ".lua"), ("sql", ".sql"), ("sql/migrations", ".sql")):
        found = sorted(p.name for p in package.joinpath(folder).iterdir() if p.name.endswith(suffix))
        print(f"  {folder}/: {len(found)} {suffix} files")
        if not found:
            problems.append(f"no {suffix} files in fastjobs/{folder}")
    for stub in ("py.typed", *(f"_core/_{piece}_c.pyi" for piece in core.MODULES)):
        if not package.joinpath(stub).is_file():
            problems.append(f"fastjobs/{stub} is missing")

    for problem in problems:
        print(f"check_installed: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
