"""Check what the wheel and the sdist hold against the source tree, file by file.

The wheel must hold exactly: every module of the packages, the ``.pyi``
stubs and ``py.typed``, the Lua and SQL files, the dashboard's static files, one compiled module per ``.pyx``,
and its ``.dist-info``; nothing else (no ``.c``, ``.pyx``, ``.html``, build
leftovers). The sdist must hold what a build from it needs: the ``.pyx`` sources
beside everything the wheel ships from ``src/``, and no generated or compiled file.

Usage:
    python ci/check_dist.py --wheel dist/fastjobs-*.whl --sdist dist/fastjobs-*.tar.gz
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGES = {"fastjobs": "", "fastjobs._core": "_core", "fastjobs.backends": "backends", "fastjobs.backends.redis": "backends/redis", "fastjobs.backends.postgres": "backends/postgres", "fastjobs.cli": "cli", "fastjobs.web": "web"}
"""Import name -> folder under src/ (pyproject's package-dir maps fastjobs to src)."""
DATA = ("py.typed", "_core/*.pyi", "lua/*.lua", "sql/*.sql", "sql/migrations/*.sql", "sql/functions/*.sql", "web/static/*")
"""pyproject's package-data, as paths under src/."""
GENERATED = (".c", ".so", ".pyd", ".html", ".pyc", ".o")


def shipped_from_src() -> set[str]:
    """Paths under src/ that the wheel must hold as fastjobs/<path> (compiled modules aside)."""
    files = {p for folder in PACKAGES.values() for p in (SRC / folder).glob("*.py")}
    files |= {p for pattern in DATA for p in SRC.glob(pattern)}
    return {p.relative_to(SRC).as_posix() for p in files}


def cython_modules() -> list[str]:
    return sorted(p.relative_to(SRC).with_suffix("").as_posix() for p in SRC.glob("_core/*.pyx"))


def check_wheel(path: Path) -> list[str]:
    names = {n for n in zipfile.ZipFile(path).namelist() if not n.endswith("/")}  # auditwheel adds folders
    problems = []
    expected = {f"fastjobs/{rel}" for rel in shipped_from_src()}
    for rel in sorted(expected - names):
        problems.append(f"wheel lacks {rel}")
    for module in cython_modules():
        built = [n for n in names if n.startswith(f"fastjobs/{module}.") and n.endswith((".so", ".pyd"))]
        if len(built) != 1:
            problems.append(f"wheel has {built or 'no'} compiled module for src/{module}.pyx")
        expected.update(built)
        if not (SRC / f"{module}.pyi").is_file():
            problems.append(f"src/{module}.pyx has no .pyi stub beside it")
    if not cython_modules():
        problems.append("no src/_core/*.pyx found: run from a source checkout")
    dist_info = {n for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    for stray in sorted(names - expected - dist_info):
        problems.append(f"wheel holds a file it should not: {stray}")
    wheel_meta = zipfile.ZipFile(path).read(next(n for n in dist_info if n.endswith("/WHEEL"))).decode()
    if "Root-Is-Purelib: false" not in wheel_meta:
        problems.append("wheel is marked pure (Root-Is-Purelib is not false)")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        members = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name]
    names = set(members)
    problems = []
    required = {f"src/{rel}" for rel in shipped_from_src()}
    required |= {f"src/{module}.pyx" for module in cython_modules()}
    required |= {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "PKG-INFO", "tests/conftest.py"}
    for rel in sorted(required - names):
        problems.append(f"sdist lacks {rel}")
    for name in sorted(names):
        shipped = name in required  # the dashboard's pages are HTML, Cython's annotations are too
        if (name.endswith(GENERATED) and not shipped) or "__pycache__" in name or name.startswith("build/"):
            problems.append(f"sdist holds a generated file: {name}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--sdist", type=Path, required=True)
    args = parser.parse_args()
    problems = check_wheel(args.wheel) + check_sdist(args.sdist)
    for problem in problems:
        print(f"check_dist: FAIL: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dist: {args.wheel.name} and {args.sdist.name} hold what they should")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
