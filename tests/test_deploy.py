"""The deployment files in ``deploy/`` and docs/deployment.md cannot drift from the CLI.

* Every YAML document parses; every ``fastjobs`` command line (systemd ``ExecStart``, the
  Dockerfile's ``ENTRYPOINT`` + ``CMD`` and ``HEALTHCHECK``, Kubernetes ``args`` after the
  image's entry point and exec probes, the page's ini, yaml and dockerfile blocks) is parsed
  by the real parser (``fastjobs.cli.build_parser``): a renamed flag fails here.
* What the files must agree on: stop timeouts longer than ``--grace``, ``KillMode=mixed`` under
  ``--processes``, the metrics annotation port equal to ``--metrics-port``, tokens from
  Secrets or environment files (never a command line), probe timeouts longer than
  ``fastjobs check --timeout``, a non-root numeric image user that the manifests run as.
* ``systemd-analyze verify`` on the units where systemd is installed.
* A block of the page that starts with ``# deploy/<file>`` is a verbatim excerpt of that file.

What runs the Dockerfile's commands is ci/dockerfile_smoke.sh (it needs the built wheel).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PAGE = ROOT / "docs" / "deployment.md"
if not DEPLOY.is_dir():
    # An unpacked sdist ships tests/ but not deploy/ (see MANIFEST.in).
    pytest.skip("no deploy/ here (the sdist's tests run without the deployment files)", allow_module_level=True)
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


# -- reading the files ------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``fastjobs`` command line found in a deployment file."""

    where: str
    argv: tuple[str, ...]
    """The arguments after ``fastjobs``."""

    def __str__(self) -> str:
        return f"{self.where}: fastjobs {shlex.join(self.argv)}"


@cache
def parse(argv: tuple[str, ...]) -> argparse.Namespace:
    """``argv`` parsed by the real ``fastjobs`` parser; a bad command line fails the test."""
    from fastjobs.cli import build_parser

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(list(argv))
        except SystemExit:
            raise AssertionError(f"fastjobs {shlex.join(argv)}: {stderr.getvalue().strip()}") from None


def fastjobs_argv(words: list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
    """The arguments after ``fastjobs`` (a bare name or a path ending in it), else None."""
    if words and Path(str(words[0])).name == "fastjobs":
        return tuple(str(w) for w in words[1:])
    return None


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(op.upper(), rest.strip()) for op, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
            if op]


@cache
def dockerfile() -> dict[str, Any]:
    """The runtime (last) stage of deploy/docker/Dockerfile: its instructions by name."""
    stages: list[dict[str, Any]] = []
    for op, rest in dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if op == "FROM":
            stages.append({"FROM": rest})
        elif stages:
            # RUN lines add up; for the others the last one counts, as in Docker.
            stages[-1][op] = f"{stages[-1][op]}\n{rest}" if op == "RUN" and op in stages[-1] else rest
    return {"stages": len(stages), **stages[-1]}


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not the exec form: {rest}"
    return value


def unit(path: Path) -> dict[str, str]:
    """A unit file's settings (the last one of each name wins, as in systemd)."""
    settings: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def seconds(value: str) -> float:
    """A systemd time span (``45``, ``45s``, ``1min 30s``) in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit_name in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit_name]
    return total


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for number, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is not None:
                yield f"{path.relative_to(ROOT)}#{number}", doc


def pod_specs() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, the workload document, its pod spec) for every Deployment and Job."""
    for where, doc in documents():
        if doc["kind"] in ("Deployment", "Job"):
            yield where, doc, doc["spec"]["template"]["spec"]


def container_command(container: dict[str, Any]) -> list[str]:
    """What a container runs: its command, else the image's ENTRYPOINT; then its args."""
    entrypoint = container.get("command") or exec_form(dockerfile()["ENTRYPOINT"])
    return [*entrypoint, *container.get("args", [])]


def yaml_commands(node: Any) -> Iterator[list[str]]:
    """Every command line of a YAML tree: lists (exec probes, ``command``), and containers that
    give only ``args`` (run after the image's ENTRYPOINT)."""
    if isinstance(node, dict):
        if "args" in node and "command" not in node:
            yield container_command(node)
        for key, value in node.items():
            if key != "args":
                yield from yaml_commands(value)
    elif isinstance(node, list):
        yield node
        for value in node:
            yield from yaml_commands(value)


def page_blocks() -> list[tuple[int, str, str]]:
    """(line, language, code) of every fenced block of docs/deployment.md."""
    blocks, lines, i = [], PAGE.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        match = re.match(r"^```([\w+-]*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        end = lines.index("```", i + 1)
        blocks.append((i + 1, match[1], "\n".join(lines[i + 1:end])))
        i = end + 1
    return blocks


def commands() -> list[Command]:
    """Every fastjobs command line of deploy/ and of the page's ini, yaml and dockerfile blocks."""
    found: list[Command] = []
    image = dockerfile()
    found.append(Command("Dockerfile ENTRYPOINT + CMD",
                         fastjobs_argv(exec_form(image["ENTRYPOINT"]) + exec_form(image["CMD"])) or ()))
    found.append(Command("Dockerfile HEALTHCHECK", fastjobs_argv(exec_form(image["HEALTHCHECK"].split(" CMD ", 1)[1]))
                         or ()))
    for path in UNITS:
        argv = fastjobs_argv(shlex.split(unit(path)["ExecStart"]))
        assert argv is not None, f"{path.name}: ExecStart does not run fastjobs"
        found.append(Command(f"{path.name} ExecStart", argv))
    for where, _doc, spec in pod_specs():
        for container in spec["containers"]:
            argv = fastjobs_argv(container_command(container))
            assert argv is not None, f"{where} {container['name']}: does not run fastjobs"
            found.append(Command(f"{where} {container['name']}", argv))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                words = container.get(probe, {}).get("exec", {}).get("command")
                if words:
                    found.append(Command(f"{where} {container['name']} {probe}", fastjobs_argv(words) or ()))
    for line, lang, code in page_blocks():
        where = f"deployment.md:{line}"
        if lang == "yaml":
            for doc in yaml.safe_load_all(code):
                found += [Command(where, argv) for words in yaml_commands(doc) if (argv := fastjobs_argv(words))]
        elif lang == "ini":
            found += [Command(where, argv) for text in code.splitlines() if text.startswith("ExecStart=")
                      if (argv := fastjobs_argv(shlex.split(text.partition("=")[2])))]
        elif lang == "dockerfile":
            forms = {op: exec_form(rest[rest.index("["):]) for op, rest in dockerfile_instructions(code)
                     if op in ("CMD", "ENTRYPOINT", "HEALTHCHECK") and "[" in rest}
            for words in (forms.get("ENTRYPOINT", []) + forms.get("CMD", []), forms.get("HEALTHCHECK", [])):
                found += [Command(where, argv)] if (argv := fastjobs_argv(words)) else []
    return found


COMMANDS = commands()


# -- the command lines ----------------------------------------------------------------


def test_every_yaml_document_parses_as_a_kubernetes_object() -> None:
    docs = list(documents())
    assert {doc["kind"] for _, doc in docs} >= {"Deployment", "Service", "Job"}
    for where, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), where
    for line, lang, code in page_blocks():
        if lang == "yaml":
            assert list(yaml.safe_load_all(code)), f"deployment.md:{line}: an empty yaml block"


def test_the_files_name_fastjobs_commands() -> None:
    names = {command.argv[0] for command in COMMANDS if command.argv}
    assert names >= {"worker", "check", "web", "migrate"}, names
    assert len(COMMANDS) >= 12
    assert any(c.where.startswith("deployment.md") for c in COMMANDS), "the page shows none of the command lines"


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_command_parses(command: Command) -> None:
    assert command.argv, f"{command.where}: no fastjobs command line"
    parse(command.argv)


def test_a_renamed_flag_would_fail() -> None:
    with pytest.raises(AssertionError, match="unrecognized arguments: --shutdown-grace"):
        parse(("worker", "tasks:app", "--shutdown-grace", "30"))


# -- what the files must agree on -------------------------------------------------------


def worker_args(argv: tuple[str, ...]) -> argparse.Namespace | None:
    args = parse(argv)
    return args if args.command == "worker" else None


def test_systemd_stop_timeout_exceeds_grace_and_signals_the_supervisor_alone() -> None:
    workers = 0
    for path in UNITS:
        settings = unit(path)
        args = worker_args(fastjobs_argv(shlex.split(settings["ExecStart"])) or ())
        if args is None:
            continue
        workers += 1
        assert settings.get("KillSignal", "SIGTERM") in ("SIGTERM", "SIGINT"), path.name
        assert seconds(settings["TimeoutStopSec"]) > args.grace, f"{path.name}: TimeoutStopSec <= --grace"
        if args.processes > 1:
            # control-group (the default) signals the worker processes too: a second SIGTERM after
            # the supervisor's forwarded one, which skips the grace period.
            assert settings.get("KillMode") == "mixed", f"{path.name}: --processes needs KillMode=mixed"
        assert "FASTJOBS_METRICS_TOKEN" not in settings.get("Environment", ""), path.name
        assert not args.metrics_token and not args.metrics_no_auth, f"{path.name}: the token belongs in EnvironmentFile"
    assert workers


def probe_budget(check: argparse.Namespace) -> float:
    """Seconds a ``fastjobs check`` may take: ``--timeout`` (connecting and the check together),
    plus the interpreter's start-up."""
    return check.timeout + 2


def test_kubernetes_workers_agree_with_their_command_line() -> None:
    workers = 0
    image_uid = int(dockerfile()["USER"].split(":")[0])
    for where, doc, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == image_uid, f"{where}: not the image's USER"
        for container in spec["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for name, entry in env.items():
                if "TOKEN" in name or name == "FASTJOBS_URL":
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{where}: {name} must come from a Secret"
            args = worker_args(fastjobs_argv(container_command(container)) or ())
            if args is None:
                continue
            workers += 1
            assert spec["terminationGracePeriodSeconds"] > args.grace, f"{where}: terminationGracePeriodSeconds <= --grace"
            annotations = doc["spec"]["template"]["metadata"]["annotations"]
            assert args.metrics_port is not None, f"{where}: no --metrics-port"
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/port"] == str(args.metrics_port), f"{where}: annotation != --metrics-port"
            assert args.metrics_port in [p["containerPort"] for p in container["ports"]], where
            assert args.metrics_host == "0.0.0.0", f"{where}: the metrics port must bind 0.0.0.0 to be scraped"
            assert not args.metrics_token and not args.metrics_no_auth, where
            assert "FASTJOBS_METRICS_TOKEN" in env, f"{where}: the metrics token must come from a Secret"
            for probe in ("livenessProbe", "readinessProbe"):
                check = parse(fastjobs_argv(container[probe]["exec"]["command"]) or ())
                assert check.command == "check" and check.app == args.app, f"{where} {probe}"
                assert container[probe]["timeoutSeconds"] >= probe_budget(check), f"{where} {probe}: timeoutSeconds too short"
    assert workers


def test_the_dashboard_is_reachable_and_keeps_its_token_out_of_the_command_line() -> None:
    dashboards = 0
    services = {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == "Service"}
    for where, doc, spec in pod_specs():
        for container in spec["containers"]:
            args = parse(fastjobs_argv(container_command(container)) or ())
            if args.command != "web":
                continue
            dashboards += 1
            assert args.host == "0.0.0.0", f"{where}: --host 127.0.0.1 (the default) is unreachable from a Service"
            assert args.token is None, f"{where}: the token belongs in FASTJOBS_WEB_TOKEN, from a Secret"
            assert "FASTJOBS_WEB_TOKEN" in {e["name"] for e in container["env"]}, where
            assert doc["spec"]["replicas"] == 1, f"{where}: sessions are signed per process"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert args.port in ports.values(), f"{where}: containerPort != --port"
            service = services[doc["metadata"]["name"]]
            assert service["spec"]["selector"] == doc["spec"]["selector"]["matchLabels"], f"{where}: selector"
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports) | set(ports.values())
    for path in UNITS:
        args = parse(fastjobs_argv(shlex.split(unit(path)["ExecStart"])) or ())
        if args.command == "web":
            dashboards += 1
            assert args.token is None, f"{path.name}: the token belongs in EnvironmentFile"
    assert dashboards >= 2


def test_the_image_runs_fastjobs_as_a_numeric_non_root_user() -> None:
    image = dockerfile()
    assert image["stages"] >= 2, "multi-stage: the wheels are resolved in a stage of their own"
    assert image["FROM"].startswith("python:3.11-slim")
    user, _, group = image["USER"].partition(":")
    assert user.isdigit() and int(user) != 0, f"USER {image['USER']}: numeric and not root (runAsNonRoot checks it)"
    assert not group or (group.isdigit() and int(group) != 0)
    assert image["STOPSIGNAL"] == "SIGTERM"
    options, _, probe = image["HEALTHCHECK"].partition(" CMD ")
    budget = re.search(r"--timeout=(\d+)s", options)
    assert budget and int(budget[1]) >= probe_budget(parse(fastjobs_argv(exec_form(probe)) or ())), "HEALTHCHECK --timeout"
    assert exec_form(image["ENTRYPOINT"]) == ["fastjobs"]
    run = image.get("RUN", "")
    assert "--no-index" in run and "fastjobs[" in run, "the runtime installs the wheels it was given, nothing else"


def test_the_page_quotes_the_files_verbatim() -> None:
    quoted = 0
    for line, _lang, code in page_blocks():
        first, _, rest = code.partition("\n")
        match = re.fullmatch(r"# (deploy/\S+)(?: \(excerpt\))?", first.strip())
        if not match:
            continue
        quoted += 1
        source = (ROOT / match[1]).read_text(encoding="utf-8")
        assert rest.strip() and rest.strip() in source, f"deployment.md:{line}: not a verbatim excerpt of {match[1]}"
    assert quoted >= 3


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # The units name /srv/app/.venv/bin/fastjobs, which verify wants to exist: point them at an
    # executable that does (verify never runs it).
    for path in UNITS:
        text = re.sub(r"(?m)^(ExecStart=)\S+", lambda m: m[1] + sys.executable, path.read_text(encoding="utf-8"))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    names = [str(tmp_path / path.name) for path in UNITS]
    proc = subprocess.run(["systemd-analyze", "verify", *names], check=False, capture_output=True, text=True, timeout=30)
    about_ours = [line for line in proc.stderr.splitlines() if any(path.name in line for path in UNITS)]
    assert proc.returncode == 0 and not about_ours, proc.stderr
