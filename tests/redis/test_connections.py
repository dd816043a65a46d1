"""URLs and connections: unix sockets, passwords, ACL users, databases, TLS, prefixes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.redis import RedisBackend
from fastjobs.errors import BackendUnavailableError, ConfigurationError
from fastjobs.job import new_job_id
from tests.redis.conftest import ServerFactory
from tests.redis.servers import free_port


async def roundtrip(backend: RedisBackend) -> None:
    """Enqueue, wait, claim, ack, read back: everything a worker does, on this connection."""
    job = NewJob(new_job_id(), "q", 0, 0.0, 3, b"payload")

    async def enqueue_soon() -> None:
        await asyncio.sleep(0.05)
        await backend.enqueue_many([job])

    producer = asyncio.ensure_future(enqueue_soon())
    await backend.wait(["q"], 5.0)  # its own connection, same URL
    await producer
    (claim,) = await backend.claim(["q"], 10, 30.0)
    assert (claim.id, claim.body) == (job.id, b"payload")
    assert await backend.ack_many([Ack(claim.id, claim.token, AckKind.SUCCEED, b"\x01")]) == [True]
    stored = await backend.get(job.id)
    assert stored is not None and stored.result == b"\x01"


async def test_unix_socket_with_password_and_database(server_factory: ServerFactory, open_backend) -> None:  # type: ignore[no-untyped-def]
    folder = tempfile.mkdtemp(prefix="fastjobs-sock-")
    try:
        path = os.path.join(folder, "redis.sock")
        server = server_factory("--unixsocket", path, "--unixsocketperm", "700", "--requirepass", "s3cr:et")
        backend = await open_backend(f"unix://:s3cr%3Aet@{path}?db=3")
        await roundtrip(backend)
        admin = server.client(password="s3cr:et", db=3)
        try:
            assert any(k.startswith(backend.prefix.encode()) for k in admin.keys("*"))
            assert not server.client(password="s3cr:et", db=0).keys("*")
        finally:
            admin.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_acl_user_password_and_database(server_factory: ServerFactory, open_backend) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    admin = server.client()
    admin.execute_command("ACL SETUSER", "alice", "on", ">wonder land", "~*", "&*", "+@all")
    admin.close()
    backend = await open_backend(f"redis://alice:wonder%20land@127.0.0.1:{server.port}/5")
    await roundtrip(backend)
    assert backend.cluster is False


async def test_wrong_password_and_unreachable_server_say_what_to_do(server_factory: ServerFactory, open_backend) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--requirepass", "right")
    with pytest.raises(BackendUnavailableError, match="cannot reach Redis") as info:
        await open_backend(f"redis://:wrong-secret@127.0.0.1:{server.port}/0", retries=0)
    assert "wrong-secret" not in str(info.value)
    with pytest.raises(BackendUnavailableError, match="is the server running"):
        await open_backend(f"redis://127.0.0.1:{free_port()}/0", retries=0)


def test_a_prefix_with_braces_is_refused() -> None:
    from fastjobs.backends import BackendOptions

    with pytest.raises(ConfigurationError, match="prefix"):
        RedisBackend("redis://localhost/0", BackendOptions(prefix="app{1}"))


async def test_prefixes_keep_apps_apart(redis_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    a = await open_backend(redis_url)
    b = await open_backend(redis_url)
    job = NewJob(new_job_id(), "shared", 0, 0.0, 3, b"x")
    await a.enqueue_many([job])
    assert await b.claim(["shared"], 10, 30.0) == []
    assert await b.get(job.id) is None and await b.stats() == {}
    assert [c.id for c in await a.claim(["shared"], 10, 30.0)] == [job.id]


@pytest.fixture(scope="module")
def tls_files() -> Iterator[dict[str, str]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    folder = tempfile.mkdtemp(prefix="fastjobs-tls-")
    f = {name: os.path.join(folder, name) for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "ext.cnf")}
    with open(f["ext.cnf"], "w") as out:
        out.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    try:
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f["ca.key"], "-out", f["ca.crt"],
            "-days", "2", "-subj", "/CN=fastjobs test CA")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f["server.key"], "-out", f["server.csr"],
            "-subj", "/CN=127.0.0.1")
        run("x509", "-req", "-in", f["server.csr"], "-CA", f["ca.crt"], "-CAkey", f["ca.key"], "-CAcreateserial",
            "-out", f["server.crt"], "-days", "2", "-extfile", f["ext.cnf"])
        yield f
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_tls(server_factory: ServerFactory, tls_files: dict[str, str], open_backend) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    try:
        server_factory("--tls-port", str(port), "--tls-cert-file", tls_files["server.crt"],
                       "--tls-key-file", tls_files["server.key"], "--tls-ca-cert-file", tls_files["ca.crt"],
                       "--tls-auth-clients", "no")
    except RuntimeError as exc:
        pytest.skip(f"this redis-server does not speak TLS: {exc}")
    backend = await open_backend(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls_files['ca.crt']}")
    await roundtrip(backend)
    # A certificate the client does not trust is refused.
    with pytest.raises(BackendUnavailableError):
        await open_backend(f"rediss://127.0.0.1:{port}/0", retries=0)


async def test_more_concurrent_calls_than_pooled_connections_wait_for_one(redis_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    """max_connections bounds the pool; calls beyond it wait for a connection instead of failing
    (500 handlers reading jobs at once must not fail for want of a free connection)."""
    backend = await open_backend(redis_url, max_connections=2)
    jobs = [NewJob(new_job_id(), "q", 0, 0.0, 3, b"x") for _ in range(20)]
    await backend.enqueue_many(jobs)
    stored = await asyncio.gather(*(backend.get(jobs[i % 20].id) for i in range(500)))
    assert all(s is not None for s in stored)
    assert len(backend._client.connection_pool._in_use_connections) + len(
        backend._client.connection_pool._available_connections) <= 2


async def test_a_pool_that_stays_busy_says_so(redis_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend = await open_backend(redis_url, max_connections=1, pool_timeout=0.2)
    pool = backend._client.connection_pool
    held = await pool.get_connection()  # the only connection, taken as a long call would
    try:
        with pytest.raises(BackendUnavailableError, match=r"all 1 connections .* busy for 0.2 s.*max_connections"):
            await backend.get(new_job_id())
    finally:
        await pool.release(held)
    assert await backend.get(new_job_id()) is None
