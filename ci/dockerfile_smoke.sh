#!/usr/bin/env bash
# Run deploy/docker/Dockerfile's commands without Docker, against the wheel ci/build_wheel.sh
# built, then what the image runs: `fastjobs --version`, its HEALTHCHECK (`fastjobs check`
# against the local Redis) and its ENTRYPOINT + CMD (the worker runs a job, then stops on the
# STOPSIGNAL), as an unprivileged user when this runs as root.
#
# Usage: bash ci/dockerfile_smoke.sh OUT   (the OUT given to ci/build_wheel.sh; OUT/dist holds the wheel)
#
# With a Docker daemon (`docker info` answers) the image is built for real and run the same
# way; without one (this project's CI machine) the Dockerfile is translated to shell:
#   * every stage runs, in order, in one temporary folder ROOT that stands for the image's /:
#     the image paths /dist, /wheels, /opt/venv and /app become ROOT/dist ... ROOT/app, in RUN,
#     ENV, COPY and WORKDIR alike (any other absolute destination fails the translation, so a
#     new path must be mapped here first);
#   * COPY's sources come from the build context: dist/ is OUT/dist, the rest this checkout;
#     RUN --mount flags are dropped (all stages share ROOT, so a mounted stage is already there);
#   * RUN lines that create the image's user (groupadd, useradd) are not run: they would change
#     this machine. USER is checked by tests/test_deploy.py (not root, numeric); the image's
#     commands run as `nobody` instead when this script runs as root;
#   * `python` is a Python 3.11 of this machine, not the base image's: the one on PATH, or as
#     root the first one that `nobody` can run too; RUN lines run with /bin/sh -eu, as Docker's
#     shell form does (plus -eu). The machine's pip configuration (an index mirror) applies.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)
out=$(cd "${1:?usage: bash ci/dockerfile_smoke.sh OUTDIR}" && pwd)
dockerfile=deploy/docker/Dockerfile
ls "$out"/dist/fastjobs-*.whl > /dev/null
start=$SECONDS
redis_url=${FASTJOBS_SMOKE_REDIS:-redis://127.0.0.1:6379/0}
prefix="smoke-$$-$RANDOM"  # the worker's keys in the local Redis, deleted at the end

work=$(mktemp -d "${TMPDIR:-/tmp}/fastjobs-image.XXXXXX")
chmod 755 "$work"  # readable by the unprivileged user the image's commands run as
# Left behind for a look if a step fails (its path is printed), removed on success.
trap 'echo "dockerfile_smoke: failed; the image folder is left at $work" >&2' EXIT

if docker info > /dev/null 2>&1; then
  echo "== a Docker daemon answers: docker build"
  mkdir -p "$work/context/dist" "$work/context/deploy/docker"
  cp "$out"/dist/fastjobs-*.whl "$work/context/dist/"
  cp deploy/docker/tasks.py "$work/context/deploy/docker/"
  tag="fastjobs-smoke:$$"
  docker build -f "$dockerfile" -t "$tag" "$work/context"
  image=(docker run --rm --network host -e FASTJOBS_URL="$redis_url" -e FASTJOBS_PREFIX="$prefix" "$tag")
  "${image[@]}" --version
  "${image[@]}" check tasks:app --timeout 3
  docker image rm "$tag" > /dev/null
  trap - EXIT
  rm -rf "$work"
  echo "== dockerfile_smoke.sh (docker) done in $((SECONDS - start)) s"
  exit 0
fi

echo "== no Docker daemon: running $dockerfile's commands in $work/root"
# The image's `python`: this machine's, unless we are root and `nobody` cannot run that one as
# it is (a Python under /root, which nobody may not read): then the first Python 3.11 that
# root and nobody both run as the same interpreter. Without one the image's commands run as root.
as_user=()
image_python=$(python -c 'import sys; print(sys.executable)')
if [ "$(id -u)" = 0 ]; then
  probe='import sys, venv; assert sys.version_info[:2] == (3, 11); print(sys.version, sys.prefix)'
  for candidate in "$image_python" /usr/local/bin/python3.11 /usr/bin/python3.11; do
    [ -x "$candidate" ] || continue
    mine=$("$candidate" -c "$probe" 2>/dev/null) || continue
    theirs=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$candidate" -c "$probe" 2>/dev/null) || continue
    if [ "$mine" = "$theirs" ]; then
      image_python=$candidate
      as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
      break
    fi
  done
  [ ${#as_user[@]} -gt 0 ] || echo "-- no Python 3.11 that nobody can run: the image's commands run as root here"
fi
mkdir -p "$work/python/bin"
ln -s "$image_python" "$work/python/bin/python"
echo "-- the image's python: $image_python ($("$image_python" -V 2>&1))"
python - "$dockerfile" "$work" "$out/dist" "$root_dir" <<'PY'
"""Translate the Dockerfile into work/build.sh (its stages) and work/image.sh (what it runs)."""
import json
import re
import shlex
import sys
from pathlib import Path

dockerfile, work, dist, checkout = map(Path, sys.argv[1:])
root = work / "root"
IMAGE_DIRS = ("/dist", "/wheels", "/opt/venv", "/app")
AT_IMAGE_DIR = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, IMAGE_DIRS)) + r")(?=[/\s\"':;]|$)")
SKIPPED = ("groupadd", "useradd")


def local(text: str) -> str:
    """``text`` with the image's paths as paths under ROOT."""
    return AT_IMAGE_DIR.sub(lambda m: f"{root}{m[1]}", text)


def local_dir(path: str) -> str:
    if not any(path == d or path.startswith(d + "/") for d in IMAGE_DIRS):
        raise SystemExit(f"dockerfile_smoke: {path!r} is not under a mapped image path {IMAGE_DIRS}: map it first")
    return local(path)


lines, pending = [], ""
for raw in dockerfile.read_text().splitlines():
    if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
        continue
    if raw.rstrip().endswith("\\"):
        pending += raw.rstrip()[:-1] + " "
        continue
    lines.append(pending + raw)
    pending = ""

build = ["set -eu", f'export PATH="{work}/python/bin:$PATH"', f"mkdir -p {shlex.quote(str(root))}",
         f"cd {shlex.quote(str(root))}"]
image: dict[str, object] = {}
for line in lines:
    op, _, rest = line.strip().partition(" ")
    op, rest = op.upper(), rest.strip()
    if op == "ARG":
        name, eq, default = rest.partition("=")
        build.append(f': "${{{name}:={default}}}"' if eq else f': "${{{name}:?ARG {name} has no default}}"')
        build.append(f"export {name}")
    elif op == "FROM":
        build.append(f"echo '-- stage: {rest}'")
        build.append(f"cd {shlex.quote(str(root))}")
    elif op == "ENV":
        for pair in shlex.split(rest):
            name, _, value = pair.partition("=")
            build.append(f'export {name}="{local(value)}"')
            image.setdefault("env", []).append(f'export {name}="{local(value)}"')
    elif op == "RUN":
        while rest.startswith("--"):
            rest = rest.split(None, 1)[1]
        if rest.split()[0] in SKIPPED:
            build.append(f"echo {shlex.quote('-- not run (creates the image user): ' + ' '.join(rest.split())[:60])}...")
            continue
        build.append(f"echo {shlex.quote('-- RUN ' + ' '.join(rest.split())[:90])}...")
        build.append("sh -euc " + shlex.quote(local(rest)))
    elif op == "COPY":
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        *sources, dest = args
        target = local_dir(dest.rstrip("/") or "/")
        build.append(f"mkdir -p {shlex.quote(target if dest.endswith('/') else str(Path(target).parent))}")
        for source in sources:
            path = dist if source.rstrip("/") == "dist" else checkout / source
            # dist/ alone: a copy of the wheels, never the sdist or other files the folder holds.
            what = f"{shlex.quote(str(path))}/*.whl" if path == dist else shlex.quote(str(path))
            build.append(f"cp -R {what} {shlex.quote(target)}")
    elif op == "WORKDIR":
        image["workdir"] = local_dir(rest)
        build.append(f"mkdir -p {shlex.quote(image['workdir'])} && cd {shlex.quote(image['workdir'])}")
    elif op in ("ENTRYPOINT", "CMD"):
        image[op.lower()] = json.loads(rest)
    elif op == "HEALTHCHECK":
        image["healthcheck"] = json.loads(rest.split(" CMD ", 1)[1])
    elif op in ("USER", "STOPSIGNAL"):
        image[op.lower()] = rest
    else:
        raise SystemExit(f"dockerfile_smoke: no translation for {op}: teach ci/dockerfile_smoke.sh")

for needed in ("entrypoint", "cmd", "healthcheck", "workdir", "user", "stopsignal"):
    if needed not in image:
        raise SystemExit(f"dockerfile_smoke: the Dockerfile has no {needed.upper()}")
(work / "build.sh").write_text("\n".join(build) + "\n")
(work / "image.sh").write_text("\n".join([
    *image["env"],
    f"workdir={shlex.quote(image['workdir'])}",
    f"user={shlex.quote(image['user'])}",
    f"stopsignal={shlex.quote(image['stopsignal'])}",
    "entrypoint=(" + shlex.join(image["entrypoint"]) + ")",
    "cmd=(" + shlex.join(image["cmd"]) + ")",
    "healthcheck=(" + shlex.join(image["healthcheck"]) + ")",
]) + "\n")
PY

echo "-- the translation: $work/build.sh; its output: $work/build.log (shown if it fails)"
if ! bash "$work/build.sh" > "$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi
grep '^-- ' "$work/build.log"
echo "== image built in $((SECONDS - start)) s"

# What the image runs, in its environment (ENV, WORKDIR), with the backend given as a container
# would get it; as `nobody` when we are root (the image's USER is not a user of this machine).
# shellcheck disable=SC1091
source "$work/image.sh"
export FASTJOBS_URL="$redis_url" FASTJOBS_PREFIX="$prefix"
cd "$workdir"
in_image() { "${as_user[@]}" "$@"; }
cleanup_keys() {
  # shellcheck disable=SC2016
  python -c 'import redis, sys
r = redis.Redis.from_url(sys.argv[1])
keys = list(r.scan_iter(match=sys.argv[2] + ":*", count=1000))
print(f"-- deleted {r.delete(*keys) if keys else 0} keys of prefix {sys.argv[2]}")' "$redis_url" "$prefix" || true
}
worker=""
on_failure() {
  # A worker still running would outlive CI: stop it (its worker processes follow their supervisor).
  [ -z "$worker" ] || kill -TERM "$worker" 2>/dev/null || true
  cleanup_keys
  echo "dockerfile_smoke: failed; the image folder is left at $work" >&2
}
trap on_failure EXIT

echo "-- as $(in_image id -un), USER in the image: $user"
shown=$(in_image "${entrypoint[@]}" --version)
version=$(cd "$root_dir" && python -c 'import re; print(re.search(r"__version__ = \"(.+)\"", open("src/_version.py").read())[1])')
echo "$shown"
[ "$shown" = "fastjobs $version" ] || { echo "dockerfile_smoke: expected 'fastjobs $version'" >&2; exit 1; }

echo "-- HEALTHCHECK: ${healthcheck[*]}"
in_image "${healthcheck[@]}"

job=$(in_image "${entrypoint[@]}" enqueue tasks:app tasks.echo --args '["smoke"]')
echo "-- ENTRYPOINT + CMD: ${entrypoint[*]} ${cmd[*]} (job $job enqueued first)"
# Not through in_image: $! must be the worker's own pid (setpriv execs it), for the STOPSIGNAL.
"${as_user[@]}" "${entrypoint[@]}" "${cmd[@]}" &
worker=$!
state=""
for _ in $(seq 1 60); do
  kill -0 "$worker" 2>/dev/null || { echo "dockerfile_smoke: the worker exited before running job $job" >&2; exit 1; }
  state=$(in_image "${entrypoint[@]}" job tasks:app "$job" --json | python -c 'import json, sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = succeeded ] && break
  sleep 0.5
done
[ "$state" = succeeded ] || { kill -KILL "$worker" 2>/dev/null; echo "dockerfile_smoke: job $job is $state, not succeeded" >&2; exit 1; }
echo "-- the worker ran job $job; sending its STOPSIGNAL ($stopsignal)"
stopped=$SECONDS
kill -s "${stopsignal#SIG}" "$worker"
if wait "$worker"; then status=0; else status=$?; fi
echo "-- the worker exited with status $status in $((SECONDS - stopped)) s"
[ "$status" = 0 ] || { echo "dockerfile_smoke: the worker exited with $status after $stopsignal" >&2; exit 1; }
trap - EXIT
cleanup_keys
rm -rf "$work"
echo "== dockerfile_smoke.sh done in $((SECONDS - start)) s"
