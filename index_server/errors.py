"""Error answers, all in one place: plain text whose reason phrase carries the message too (twine
shows the phrase), the app's error handlers, and the private-index read guard."""

from __future__ import annotations

import contextlib
import logging
import re

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import LimitedStream

from index_server import slowclients
from index_server.auth import basic_token
from index_server.state import State, get_state
from index_server.storage import StorageFull

DRAIN_CAP = 64 << 20  # bytes of an unread body discarded after a refusal, at most
DISCARD_SECONDS = 5.0
BODY_READ = "wheelfarm.body_read"  # set in the WSGI environ once a view has read the body
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def text_error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text error whose reason phrase carries the message too: twine shows the phrase."""
    # The phrase is printable ASCII only: a name with NUL, CR/LF or other controls (they come from
    # URLs and uploads) must not make the status line invalid, which the server answers with a 500.
    phrase = _UNPRINTABLE.sub("?", " ".join(message.split()))[:200]
    resp = Response(message.rstrip() + "\n", status=f"{code} {phrase}", mimetype="text/plain")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def unauthorized(message: str) -> Response:
    return text_error(401, message, {"WWW-Authenticate": 'Basic realm="wheelfarm"'})


def refuse_unread(resp: Response, environ: dict | None = None) -> Response:
    """An answer given before the request body was read (a bad token, a Content-Length over the
    limit, ...): it goes out at once, and only then is the unread body discarded (bounded in bytes
    and, under gevent, in time) so that the client reads the answer instead of a connection reset.
    A slow or huge body never delays a refusal. (gunicorn decides itself whether to keep the
    connection: it drops an application's Connection header, and skips what is left of the body
    within its --keep-alive time.)"""
    environ = environ if environ is not None else request.environ
    if environ.get(BODY_READ):
        return resp
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        resp.call_on_close(lambda: _discard(environ, length))
    return resp


def _discard(environ: dict, length: int) -> None:
    if length > DRAIN_CAP:
        return
    stream = LimitedStream(environ["wsgi.input"], length)
    with slowclients.deadline(DISCARD_SECONDS), contextlib.suppress(Exception):
        while stream.read(1 << 16):
            pass


def read_refusal(st: State, authorization: str | None) -> str | None:
    """The private-index guard: why this request may not read (a 401 message), or None."""
    if not st.config.private:
        return None
    secret = basic_token(authorization)
    if secret is None:
        return "this index is private: authenticate as __token__ with a token"
    if st.tokens.check(secret) is None:
        return "invalid or revoked token"
    return None


def register(app: Flask) -> None:
    @app.errorhandler(StorageFull)
    def _storage_full(exc: StorageFull) -> Response:
        # Nothing half-written stays behind (storage and catalog take their writes back).
        logging.getLogger("index_server").error("%s %s: %s", request.method, request.path, exc)
        return text_error(507, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        messages = {
            404: f"not found: {request.path}",
            405: f"method {request.method} not allowed on {request.path}",
            413: f"upload too large: the limit is {get_state().config.max_upload} bytes",
        }
        resp = text_error(code, messages.get(code) or exc.description or exc.name)
        if code == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        return refuse_unread(resp) if code in (408, 411, 413) else resp
