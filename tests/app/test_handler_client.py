"""The consumer's HTTP client for its handler (app/handler.py HandlerClient) against a raw socket
server that answers the way misbehaving handlers do: the deadline covers the whole answer
(headers, chunk framing, body), and what is read is bounded."""

from __future__ import annotations

import gzip
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.handler import (
    MAX_ANSWER_BYTES,
    REASON_BYTES,
    TIMEOUT,
    UNREACHABLE,
    HandlerClient,
    Reply,
)

Answer = Callable[[socket.socket], None]


class RawServer:
    """Accepts connections on loopback; for each request, reads it whole and calls ``answer``
    with the socket. Counts the connections it accepted."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []  # each request's head (request line and headers)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while line := reader.readline():
                length = 0
                request_head = line
                while line not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    line = reader.readline()
                    request_head += line
                self.requests.append(request_head)
                reader.read(length)
                self.answer(conn)
        except OSError:
            pass  # the client closed its end
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def head(status: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_trickled_answer_times_out_at_the_deadline(serve: Callable[[Answer], RawServer]) -> None:
    """The headers at once, then a byte every 0.3 s: a socket timeout applies to each read, so
    without a deadline over the whole call this one would last 6 s."""

    def trickle(conn: socket.socket) -> None:
        conn.sendall(head("200 OK", 20))
        for _ in range(20):
            time.sleep(0.3)
            conn.sendall(b" ")

    server = serve(trickle)
    client = HandlerClient(server.url)
    started = time.monotonic()
    assert client.post("{}", 1.0) == TIMEOUT
    assert time.monotonic() - started < 1.5
    # The half-read connection is dropped, never reused: the next call has a connection of its
    # own (its trickle starts anew, and is cut again).
    assert client.post("{}", 0.5) == TIMEOUT
    assert server.connections == 2


def test_a_huge_rejection_is_read_only_as_far_as_its_reason(
    serve: Callable[[Answer], RawServer],
) -> None:
    """A 422 announcing 200 MB: the client keeps the first KiB for the reason, reads no more,
    drops the connection (the rest is unread), and the next call works."""
    size = 200_000_000
    sent: list[int] = []
    answered: list[bool] = []

    def huge_then_fine(conn: socket.socket) -> None:
        if answered:
            conn.sendall(head("204 No Content", 0))
            return
        answered.append(True)
        conn.sendall(head("422 Unprocessable Content", size, "text/plain"))
        chunk = b"x" * 1_000_000
        for _ in range(size // len(chunk)):
            conn.sendall(chunk)
            sent.append(len(chunk))

    server = serve(huge_then_fine)
    client = HandlerClient(server.url)
    started = time.monotonic()
    reply = client.post("{}", 10.0)
    assert isinstance(reply, Reply)
    assert reply.status == 422
    assert len(reply.body) == REASON_BYTES
    assert not reply.whole
    assert time.monotonic() - started < 2
    assert client.post("{}", 5.0) == Reply(204, "application/json", b"")
    assert server.connections == 2  # a fresh connection after the dropped one
    assert sum(sent) < size  # the client stopped reading: the server's writes failed


def test_a_2xx_over_the_limit_is_cut_and_marked(serve: Callable[[Answer], RawServer]) -> None:
    body = b"[" + b" " * (2 * MAX_ANSWER_BYTES) + b"]"

    def big(conn: socket.socket) -> None:
        conn.sendall(head("200 OK", len(body)) + body)

    reply = HandlerClient(serve(big).url).post("{}", 5.0)
    assert isinstance(reply, Reply)
    assert (reply.status, reply.whole) == (200, False)
    assert len(reply.body) == MAX_ANSWER_BYTES


def test_calls_reuse_one_kept_alive_connection_per_worker(
    serve: Callable[[Answer], RawServer],
) -> None:
    def fine(conn: socket.socket) -> None:
        conn.sendall(head("200 OK", 7) + b'{"a":1}')

    server = serve(fine)
    client = HandlerClient(server.url)
    replies: list[object] = []
    workers = [
        threading.Thread(target=lambda: replies.extend(client.post("{}", 5.0) for _ in range(100)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert replies == [Reply(200, "application/json", b'{"a":1}')] * 200
    assert server.connections == 2  # 200 calls, one kept-alive connection per worker


def test_chunked_answers_are_read_whole_and_compressed_ones_are_marked(
    serve: Callable[[Answer], RawServer],
) -> None:
    """Chunked framing, which a handler's framework may choose; a compression the consumer did
    not ask for (it sends Accept-Encoding: identity) comes back marked, for read_answer to call
    a defect, and is never inflated."""
    result = b'{"lines": "' + b"x" * 200_000 + b'"}'
    bomb = gzip.compress(b" " * (8 * MAX_ANSWER_BYTES))

    def chunked(conn: socket.socket) -> None:
        parts = [result[i : i + 7000] for i in range(0, len(result), 7000)]
        body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body
        )

    def compressed(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(bomb), bomb)
        )

    server = serve(chunked)
    client = HandlerClient(server.url)
    whole = Reply(200, "application/json", result)
    assert client.post("{}", 5.0) == client.post("{}", 5.0) == whole
    assert server.connections == 1  # the chunked body ended cleanly: the connection is reused
    reply = HandlerClient(serve(compressed).url).post("{}", 5.0)
    assert isinstance(reply, Reply)
    assert (reply.encoding, reply.body) == ("gzip", bomb)  # as sent: 8 MiB would inflate
    assert b"\r\nAccept-Encoding: identity\r\n" in server.requests[0]  # asked for none


def test_binary_mode_headers_come_back_by_attribute_name(
    serve: Callable[[Answer], RawServer],
) -> None:
    def binary(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCE-SpecVersion: 1.0\r\n"
            b"ce-type: com.example.t\r\nContent-Length: 2\r\n\r\nhi"
        )

    reply = HandlerClient(serve(binary).url).post("{}", 5.0)
    assert reply == Reply(200, "text/plain", b"hi", {"specversion": "1.0", "type": "com.example.t"})


def test_a_binary_mode_header_sent_twice_is_seen(serve: Callable[[Answer], RawServer]) -> None:
    def twice(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nce-specversion: 1.0\r\nce-type: t\r\nce-id: a\r\n"
            b"CE-ID: b\r\nContent-Length: 0\r\n\r\n"
        )

    reply = HandlerClient(serve(twice).url).post("{}", 5.0)
    assert isinstance(reply, Reply)
    assert reply.repeated == frozenset({"id"})


@pytest.mark.parametrize("where", ["headers", "chunk sizes"])
def test_an_answer_trickled_a_byte_at_a_time_is_cut_at_the_deadline(
    serve: Callable[[Answer], RawServer], where: str
) -> None:
    """Each byte comes well within a socket timeout; only a deadline over the whole call stops
    the call (with per-read timeouts alone, such a call ran 16-32 s past a 1 s deadline)."""
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + (b"X-Slow: " + b"x" * 40 + b"\r\n" if where == "headers" else b"")
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"00000000000000000000000000007\r\n" if where == "chunk sizes" else b"7\r\n")
        + b'{"a":1}\r\n0\r\n\r\n'
    )
    slow_from = answer.index(b"X-Slow") if where == "headers" else answer.index(b"0000")

    trickled: list[bool] = []

    def trickle(conn: socket.socket) -> None:
        if trickled:  # the call after the cut: at once
            conn.sendall(answer)
            return
        trickled.append(True)
        conn.sendall(answer[:slow_from])
        for byte in answer[slow_from:]:
            time.sleep(0.05)
            conn.sendall(bytes([byte]))

    server = serve(trickle)
    client = HandlerClient(server.url)
    started = time.monotonic()
    assert client.post("{}", 0.5) == TIMEOUT
    assert time.monotonic() - started < 0.9
    assert client.post("{}", 5.0) == Reply(200, "application/json", b'{"a":1}')
    assert server.connections == 2  # the cut connection is not reused


def test_an_idle_connection_the_handler_closed_is_replaced_not_a_failure(
    serve: Callable[[Answer], RawServer],
) -> None:
    """Node and uvicorn close idle kept-alive connections after about 5 s: the next call finds
    it closed before sending, and opens another, instead of counting the handler as down."""

    def once_then_close(conn: socket.socket) -> None:
        conn.sendall(head("200 OK", 7) + b'{"a":1}')
        time.sleep(0.05)
        conn.shutdown(socket.SHUT_RDWR)  # the handler's idle timeout

    server = serve(once_then_close)
    client = HandlerClient(server.url)
    fine = Reply(200, "application/json", b'{"a":1}')
    assert client.post("{}", 5.0) == fine
    time.sleep(0.3)
    assert client.post("{}", 5.0) == fine
    assert server.connections == 2


def test_interim_1xx_answers_are_skipped_and_never_left_for_the_next_call(
    serve: Callable[[Answer], RawServer],
) -> None:
    """103 Early Hints before the answer: the answer is the 200 after it, and the next call gets
    its own (http.client alone takes the 103 as the answer and leaves the 200 behind)."""
    calls: list[int] = []

    def hints_first(conn: socket.socket) -> None:
        calls.append(1)
        body = b'{"call":%d}' % len(calls)
        conn.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n" + head("200 OK", len(body)) + body
        )

    client = HandlerClient(serve(hints_first).url)
    assert client.post("{}", 5.0) == Reply(200, "application/json", b'{"call":1}')
    assert client.post("{}", 5.0) == Reply(200, "application/json", b'{"call":2}')


def test_a_body_cut_short_by_the_handler_is_no_answer(serve: Callable[[Answer], RawServer]) -> None:
    """Content-Length 20, 7 bytes, then the handler closes (a crash mid-answer): no reply the
    contract would read (a partial result stored, a defect dead-lettered), but a retry."""

    def cut_short(conn: socket.socket) -> None:
        conn.sendall(head("200 OK", 20) + b'{"a":1}')
        conn.shutdown(socket.SHUT_RDWR)

    assert HandlerClient(serve(cut_short).url).post("{}", 5.0) == UNREACHABLE


def test_keep_alive_holds_with_descriptors_past_1024(serve: Callable[[Answer], RawServer]) -> None:
    """select() refuses descriptors from FD_SETSIZE (1024) on; a busy consumer may have them,
    and the check for a closed idle connection must not then reconnect on every call."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:

        def fine(conn: socket.socket) -> None:
            conn.sendall(head("200 OK", 7) + b'{"a":1}')

        server = serve(fine)
        client = HandlerClient(server.url)
        replies = [client.post("{}", 5.0) for _ in range(5)]
        assert replies == [Reply(200, "application/json", b'{"a":1}')] * 5
        assert server.connections == 1
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
