"""A loopback TCP proxy in front of the broker, so a test can cut a live connection the way a
network failure or broker crash does (both sockets aborted, no AMQP close handshake)."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        """Listens (again on the same port after `stop`, so clients can reconnect)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuses new connections and cuts the open ones."""
        if self._server is not None:
            self._server.close()
            self.drop()
            await self._server.wait_closed()
            self._server = None
        self.drop()

    def drop(self) -> None:
        """Cuts every open connection at once."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._upstream)
        except OSError:
            client.transport.abort()
            return
        self._writers += [client, upstream]
        await asyncio.gather(
            _pipe(client_reader, upstream), _pipe(upstream_reader, client), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.transport.abort()
