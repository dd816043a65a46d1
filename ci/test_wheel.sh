#!/usr/bin/env bash
# Test what ci/build_wheel.sh built, installed, far from this checkout:
#   * the wheel, with the test extras, in a fresh virtualenv: ci/check_installed.py,
#     `fastjobs --version`, then the core, the backend and worker contracts (memory, Redis,
#     PostgreSQL: they read the wheel's Lua and SQL files) and CLI tests, from a directory holding only
#     the sdist's tests/ and pyproject.toml, so the wheel's fastjobs is the only one;
#   * the sdist alone, built by pip in another fresh virtualenv, then imported.
#     It compiles while the wheel's tests run: one core each.
#
# Usage: bash ci/test_wheel.sh OUT   (the OUT given to ci/build_wheel.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(cd "${1:?usage: bash ci/test_wheel.sh OUTDIR}" && pwd)
wheel=$(ls "$out/dist"/fastjobs-*.whl)
sdist=$(ls "$out/dist"/fastjobs-*.tar.gz)
version=$(python -c 'import re, sys; print(re.search(r"__version__ = \"(.+)\"", open("src/_version.py").read())[1])')
start=$SECONDS

# Nothing may lead imports back to this checkout, or select the twins.
unset PYTHONPATH FASTJOBS_NO_EXTENSIONS

rm -rf "$out/venv-sdist" "$out/venv-wheel" "$out/run" "$out/sdist-src"
# Job control on for this one job: it gets a process group of its own, so that
# leaving early (a failed wheel test) stops the whole pip build, not just the shell.
set -m
(
  python -m venv "$out/venv-sdist"
  "$out/venv-sdist/bin/python" -m pip install -q "$sdist"
  cd "$out"
  "$out/venv-sdist/bin/python" "$root/ci/check_installed.py"
) > "$out/sdist-install.log" 2>&1 &
sdist_job=$!
set +m
trap 'kill -- -"$sdist_job" 2>/dev/null || true' EXIT

python -m venv "$out/venv-wheel"
"$out/venv-wheel/bin/python" -m pip install -q "$wheel[test]"
echo "== wheel installed with its test extras in $((SECONDS - start)) s"

# The tests as the sdist ships them, and the pytest configuration; not src/.
mkdir -p "$out/run" "$out/sdist-src"
tar -xzf "$sdist" -C "$out/sdist-src" --strip-components=1
cp -R "$out/sdist-src/tests" "$out/sdist-src/pyproject.toml" "$out/run/"
cd "$out/run"
"$out/venv-wheel/bin/python" "$root/ci/check_installed.py"
shown=$("$out/venv-wheel/bin/fastjobs" --version)
echo "fastjobs --version: $shown"
[ "$shown" = "fastjobs $version" ] || { echo "test_wheel: expected 'fastjobs $version'" >&2; exit 1; }

# The core (compiled, from the wheel), the backend and worker contracts on all three backends
# (every Lua script and SQL file the wheel ships is read at connect and run by them) and the
# CLI: the whole contract suite already ran from the checkout, against the same code.
"$out/venv-wheel/bin/python" -m pytest tests/core tests/contract/test_backend_contract.py \
  tests/contract/test_worker_contract.py tests/process/test_cli.py -m "not slow" -q -p no:cacheprovider
echo "== wheel tests done at $((SECONDS - start)) s"

if wait "$sdist_job"; then status=0; else status=$?; fi
trap - EXIT
echo "-- sdist install (pip install ${sdist##*/} into a fresh virtualenv):"
cat "$out/sdist-install.log"
[ "$status" = 0 ] || { echo "test_wheel: installing from the sdist failed ($status)" >&2; exit 1; }
echo "== test_wheel.sh done in $((SECONDS - start)) s"
