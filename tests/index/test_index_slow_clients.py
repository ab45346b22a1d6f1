"""Slow clients (issue 14 item 2): hundreds of connections that trickle headers, trickle bodies to
/legacy/ and the farm API, or just sit idle must not stop the index: /simple/ keeps answering
within 1 s. Loopback only; every connection is closed by the test (bounded, stops by itself)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from pathlib import Path

import pytest
from index_http import basic
from support.index_server import create_token, start_server

pytestmark = pytest.mark.slow

SLOW = 400  # connections held open at once
HOLD = 8.0  # seconds the slow connections are held while /simple/ is measured


def _open(port: int, kind: int, token: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind == 0:  # trickled headers: a request line and one header, never the blank line
        s.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")
    elif kind == 1:  # a trickled upload body to /legacy/, with a valid token
        s.sendall(
            b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            + f"Authorization: {basic(token)}\r\nContent-Length: 500000\r\n\r\n--b\r\n".encode()
        )
    elif kind == 2:  # a trickled farm API body
        s.sendall(
            b"PUT /api/farm/logs/slow-demo/a1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            + f"Authorization: {basic(token)}\r\nContent-Length: 500000\r\n\r\nx".encode()
        )
    # kind 3: connected and idle, not a byte sent
    return s


def test_simple_answers_within_a_second_under_hundreds_of_slow_clients(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=2)
    socks: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:  # one more byte on every body connection now and then, until stopped
        while not stop.wait(1.0):
            for i, s in enumerate(list(socks)):
                if i % 4 in (1, 2):
                    with contextlib.suppress(OSError):
                        s.send(b"x")

    try:
        for i in range(SLOW):
            socks.append(_open(server.port, i % 4, token))
        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        latencies = []
        deadline = time.monotonic() + HOLD
        while time.monotonic() < deadline:
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/simple/")
            reply = conn.getresponse()
            reply.read()
            conn.close()
            latencies.append(time.monotonic() - started)
            assert reply.status == 200
            time.sleep(0.2)
        stop.set()
        feeder.join(timeout=10)
        # The explicit bound of the issue; the worst of ~40 requests, with a generous margin.
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
    finally:
        stop.set()
        for s in socks:
            s.close()
        server.stop()


def _answer_before_body(port: int, head: bytes) -> tuple[int, bytes]:
    """Send only the request head (a body is announced but never sent); the status line and
    message the server answers with regardless."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply


@pytest.mark.parametrize(
    ("head", "status", "words"),
    [
        (  # a wrong token: 401
            b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Authorization: Basic X190b2tlbl9fOndmX25vcGU=\r\nContent-Length: 10000000\r\n\r\n",
            401,
            b"invalid or revoked token",
        ),
        (  # too large by Content-Length (the tests' limit is 1 MiB): 413
            b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Authorization: TOKEN\r\nContent-Length: 3000000\r\n\r\n",
            413,
            b"limit is",
        ),
        (  # the farm API, too large for a log: 413
            b"PUT /api/farm/logs/demo/a1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Authorization: TOKEN\r\nContent-Length: 20000000\r\n\r\n",
            413,
            b"limit is",
        ),
    ],
)
def test_refusals_are_answered_without_reading_the_body(
    server, upload_token: str, head: bytes, status: int, words: bytes
) -> None:
    head = head.replace(b"Authorization: TOKEN", f"Authorization: {basic(upload_token)}".encode())
    got, reply = _answer_before_body(server.port, head)
    assert got == status, reply
    assert words in reply
