"""A TCP proxy on loopback whose link can be cut and restored, to test network faults.

While cut, every open connection is closed and every new one is closed as soon as it is
accepted: to a client the service is unreachable (connection reset or refused mid-call), as
when a node loses its route to the queue or the table for a few seconds. While it answers
(``answer``), every request gets one canned HTTP response instead of reaching the service: the
throttling or server error a real table sends, parsed by the real SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

CHUNK = 65_536


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0  # the kernel picks one as the server binds
        self.cuts = 0
        self.answered = 0
        self._cut = False
        self._answer: bytes | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutting-proxy", daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        self.cuts += 1
        asyncio.run_coroutine_threadsafe(self._set(cut=True), self._loop).result(5)

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._set(cut=False), self._loop).result(5)
        self._answer = None

    def answer(self, status: str, content_type: str, body: str) -> None:
        """Answer every new request with this response (``status`` as "503 Server Busy")
        until ``restore``; open connections are cut so the next call meets it."""
        data = body.encode()
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        self._answer = head.encode() + data
        asyncio.run_coroutine_threadsafe(self._set(cut=True), self._loop).result(5)
        asyncio.run_coroutine_threadsafe(self._set(cut=False), self._loop).result(5)

    async def _set(self, *, cut: bool) -> None:
        self._cut = cut
        if cut:
            for writer in list(self._writers):
                writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        if self._answer is not None:
            await self._reply(reader, writer, self._answer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))
            writer.close()
            up_writer.close()

    async def _reply(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: bytes
    ) -> None:
        """Read one request (headers, then Content-Length bytes) and send ``response``."""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    await reader.readexactly(int(value))
            writer.write(response)
            await writer.drain()
            self.answered += 1
        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        writer.close()
