"""Slow clients under gunicorn's gevent worker: every connection is a greenlet, so hundreds of
clients that trickle headers or bodies, or sit idle, cost memory, not the workers' attention.
gunicorn bounds the wait for a request's headers (--keep-alive seconds, also for the first request)
and the connections per worker (--worker-connections); this module bounds the wait for each piece
of a request body, and the time spent discarding an unread body after a refusal.

Outside gevent (`wheelfarm serve --embedded`, tests that build the app in-process) both are no-ops.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout

BODY_IDLE_SECONDS = 30.0  # at most this long without a byte of a request body being received


def _gevent() -> Any:
    """The gevent module when this process runs under it (sockets patched), else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    import gevent

    return gevent


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Leave the block silently after `seconds` (under gevent; otherwise no bound)."""
    gevent = _gevent()
    if gevent is None:
        yield
        return
    with gevent.Timeout(seconds, False):
        yield


class IdleTimeoutInput:
    """wsgi.input whose every read waits at most BODY_IDLE_SECONDS, then fails with a 408."""

    def __init__(self, stream: Any, gevent: Any) -> None:
        self._stream, self._gevent = stream, gevent

    def _timed(self, method: str, *args: Any) -> Any:
        try:
            with self._gevent.Timeout(BODY_IDLE_SECONDS):
                return getattr(self._stream, method)(*args)
        except self._gevent.Timeout:
            raise RequestTimeout(
                f"the request body stalled: nothing arrived for {BODY_IDLE_SECONDS:.0f} s"
            ) from None

    def read(self, *args: Any) -> bytes:
        return self._timed("read", *args)

    def readline(self, *args: Any) -> bytes:
        return self._timed("readline", *args)

    def readlines(self, *args: Any) -> list[bytes]:
        return self._timed("readlines", *args)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def guard_input(environ: dict) -> None:
    gevent = _gevent()
    if gevent is not None and "wsgi.input" in environ:
        environ["wsgi.input"] = IdleTimeoutInput(environ["wsgi.input"], gevent)
