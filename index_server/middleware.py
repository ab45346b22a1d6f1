"""The WSGI layer in front of Flask: every request first picks up other processes' changes and
passes the private-index guard; then the hot requests (cached simple pages, whole files) are
answered without Flask's dispatch. Same answers as the Flask views (they share the code that builds
them); anything else (errors, redirects, ranges, uploads) goes through Flask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from index_server import files, overlay, simple, slowclients
from index_server.errors import read_refusal, refuse_unread, unauthorized
from index_server.state import State

STATUS_LINES = {200: "200 OK", 302: "302 Found", 304: "304 Not Modified"}
# Endpoints that check a token themselves (an upload token is more than a read token).
SELF_GUARDED = frozenset({"upload.upload", "static"})

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class IndexMiddleware:
    def __init__(self, app: Flask, st: State) -> None:
        self.flask_wsgi: WSGIApp = app.wsgi_app
        self.url_map = app.url_map
        self.st = st

    def _endpoint(self, environ: dict) -> str | None:
        try:
            endpoint, _args = self.url_map.bind_to_environ(environ).match()
        except HTTPException:
            return None
        return endpoint if isinstance(endpoint, str) else None

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        slowclients.guard_input(environ)
        st = self.st
        st.refresh()
        refusal = read_refusal(st, environ.get("HTTP_AUTHORIZATION"))
        if refusal is not None and self._endpoint(environ) not in SELF_GUARDED:
            return refuse_unread(unauthorized(refusal), environ)(environ, start_response)
        hit = (
            simple.fast_path(st, environ)
            or files.fast_path(st, environ)
            or overlay.fast_path(st, environ)
        )
        if hit is None:
            return self.flask_wsgi(environ, start_response)
        status, headers, body = hit
        start_response(STATUS_LINES[status], headers)
        return [body] if isinstance(body, bytes) else body


def install(app: Flask, st: State) -> None:
    app.wsgi_app = IndexMiddleware(app, st)  # type: ignore[method-assign]
