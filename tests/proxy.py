"""A TCP proxy a test can cut: an outage of a real server without stopping the server.

The shared Redis and PostgreSQL servers must stay up for the other tests, so an
outage is made in between: the backend connects to the proxy, and :meth:`cut`
resets every connection through it and refuses new ones (as a server that
went down does), until :meth:`restore`. Runs in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import urlsplit, urlunsplit


class OutageProxy:
    """Forwards ``127.0.0.1:<port>`` to a server; ``cut()`` and ``restore()`` make and end an outage.

    Example:
        >>> proxy = await OutageProxy.start("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> backend = create_backend(proxy.url, options)  # doctest: +SKIP
        >>> await proxy.cut()  # doctest: +SKIP
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self.port = 0
        self._parts = parts
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, url: str) -> OutageProxy:
        proxy = cls(url)
        await proxy.restore()
        return proxy

    @property
    def url(self) -> str:
        """The server's URL with the proxy's address in place of the server's."""
        parts = self._parts
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def cut(self) -> None:
        """Reset every connection and refuse new ones, until :meth:`restore`."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                # SO_LINGER 0: the peer gets a reset, as from a server that died.
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        self._writers.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()  # after the connections closed: 3.12 waits for them

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()
            self._writers.discard(dst)
