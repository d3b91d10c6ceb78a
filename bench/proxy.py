"""A TCP proxy that delays every client-to-server byte by a fixed time: injected call latency.

    python -m bench.proxy --delay-ms 15 LISTEN_PORT:UPSTREAM_PORT [...]

Each chunk a client sends is forwarded ``delay`` after it arrived, in order; responses flow back
at once. An HTTP request therefore reaches the emulator ``delay`` late, like a call to a service
that is ``delay`` away. Runs in its own process so its CPU time is not billed to the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable

CHUNK = 65_536


async def _forward_delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    loop = asyncio.get_running_loop()
    pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while data := await reader.read(CHUNK):
            pending.put_nowait((loop.time() + delay, data))
        pending.put_nowait((0.0, b""))

    async def send() -> None:
        while True:
            due, data = await pending.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), send())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handler(upstream: int, delay: float) -> Handler:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _forward_delayed(client_r, server_w, delay), _forward(server_r, client_w)
        )

    return handle


async def serve(mappings: list[tuple[int, int]], delay: float) -> None:
    servers = [
        await asyncio.start_server(_handler(upstream, delay), "127.0.0.1", listen)
        for listen, upstream in mappings
    ]
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await stack.enter_async_context(server)
        await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("mapping", nargs="+", help="LISTEN_PORT:UPSTREAM_PORT")
    args = parser.parse_args()
    mappings = [tuple(int(p) for p in m.split(":", 1)) for m in args.mapping]
    asyncio.run(serve(mappings, args.delay_ms / 1000))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
