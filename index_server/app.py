"""The Flask application factory and its configuration.

Production: ``gunicorn -w 2 -k gthread --threads 4 -b 127.0.0.1:8080 'index_server.app:create_app()'``, configured
through environment variables (see Config.from_env); ``wheelfarm serve`` runs exactly that.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from index_server.auth import TokenStore, basic_token
from index_server.catalog import Catalog
from index_server.farm import Farm
from index_server.storage import LocalStorage, Storage, StorageFull

DEFAULT_MAX_UPLOAD = 512 << 20


def default_data_dir() -> Path:
    from builder.common.paths import data_dir

    return data_dir() / "index"


@dataclass(frozen=True)
class Config:
    data: Path
    private: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD  # bytes, for a whole upload request
    base_url: str = ""  # e.g. "https://wheels.example.com"; empty: links are relative to the host
    strict: bool = False  # uploads must pass the wheel checker (builder.check) or get a 422

    @classmethod
    def from_env(cls) -> Config:
        """WHEELFARM_INDEX_DATA, WHEELFARM_INDEX_PRIVATE (1/true), WHEELFARM_INDEX_MAX_UPLOAD
        (bytes), WHEELFARM_INDEX_BASE_URL."""
        env = os.environ
        return cls(
            data=Path(env["WHEELFARM_INDEX_DATA"])
            if env.get("WHEELFARM_INDEX_DATA")
            else default_data_dir(),
            private=env.get("WHEELFARM_INDEX_PRIVATE", "").lower() in ("1", "true", "yes"),
            max_upload=int(env.get("WHEELFARM_INDEX_MAX_UPLOAD") or DEFAULT_MAX_UPLOAD),
            base_url=env.get("WHEELFARM_INDEX_BASE_URL", "").rstrip("/"),
            strict=env.get("WHEELFARM_INDEX_STRICT", "").lower() in ("1", "true", "yes"),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "WHEELFARM_INDEX_DATA": str(self.data),
            "WHEELFARM_INDEX_PRIVATE": "1" if self.private else "",
            "WHEELFARM_INDEX_MAX_UPLOAD": str(self.max_upload),
            "WHEELFARM_INDEX_BASE_URL": self.base_url,
            "WHEELFARM_INDEX_STRICT": "1" if self.strict else "",
        }


class State:
    """Everything a request needs, kept in app.extensions["wheelfarm"]."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        self.catalog = Catalog(storage)
        self.tokens = TokenStore(storage)
        self.farm = Farm(storage, self.catalog)


def state() -> State:
    return current_app.extensions["wheelfarm"]


def text_error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text error whose reason phrase carries the message too: twine shows the phrase."""
    phrase = " ".join(message.split())[:200].encode("latin-1", "replace").decode("latin-1")
    resp = Response(message.rstrip() + "\n", status=f"{code} {phrase}", mimetype="text/plain")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


DRAIN_CAP = 64 << 20


def drain_body() -> None:
    """Read and drop an unread request body (up to a cap) before answering an error.

    A server that answers early and closes the connection with unread bytes makes the kernel send a
    reset, and clients such as twine then see "connection reset" instead of the error message.
    """
    length = request.content_length or 0
    if not length or length > DRAIN_CAP:
        return
    from werkzeug.wsgi import LimitedStream

    stream = LimitedStream(request.environ["wsgi.input"], length)
    try:
        while stream.read(1 << 20):
            pass
    except Exception:
        pass


def unauthorized(message: str) -> Response:
    return text_error(401, message, {"WWW-Authenticate": 'Basic realm="wheelfarm"'})


STATUS_LINES = {200: "200 OK", 304: "304 Not Modified"}


def install_fast_path(app: Flask, st: State) -> None:
    """Serve the hot requests (cached simple pages, whole files) before Flask's dispatch.

    Same answers as the Flask views (they share the code that builds them); anything else (errors,
    redirects, ranges, uploads, a private index without a valid token) goes through Flask.
    """
    from index_server import files, simple

    flask_wsgi = app.wsgi_app

    def wsgi(environ, start_response):
        st.catalog.refresh()
        if st.config.private:
            secret = basic_token(environ.get("HTTP_AUTHORIZATION"))
            if secret is None or st.tokens.check(secret) is None:
                return flask_wsgi(environ, start_response)
        hit = simple.fast_path(st, environ) or files.fast_path(st, environ)
        if hit is None:
            return flask_wsgi(environ, start_response)
        status, headers, body = hit
        start_response(STATUS_LINES[status], headers)
        return [body] if isinstance(body, bytes) else body

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def _log_to_stderr() -> None:
    """Uploads, refusals and yanks go to stderr (gunicorn's error log) unless logging is set up."""
    logger = logging.getLogger("index_server")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def create_app(config: Config | None = None, storage: Storage | None = None) -> Flask:
    config = config or Config.from_env()
    _log_to_stderr()
    storage = storage or LocalStorage(config.data)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 << 20  # twine sends the long description as a field
    app.json.sort_keys = False  # type: ignore[attr-defined]
    st = State(config, storage)
    st.catalog.load()
    app.extensions["wheelfarm"] = st

    from index_server import api, farm_api, files, pages, simple, upload

    app.register_blueprint(simple.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(farm_api.bp)

    install_fast_path(app, st)

    @app.before_request
    def _refresh_and_guard() -> Response | None:
        st.catalog.refresh()
        st.farm.refresh()
        if config.private and request.endpoint not in ("upload.upload", "static"):
            secret = basic_token(request.headers.get("Authorization"))
            if secret is None or st.tokens.check(secret) is None:
                drain_body()
                if secret is None:
                    return unauthorized(
                        "this index is private: authenticate as __token__ with a token"
                    )
                return unauthorized("invalid or revoked token")
        return None

    @app.errorhandler(StorageFull)
    def _storage_full(exc: StorageFull) -> Response:
        # Nothing half-written stays behind (storage and catalog take their writes back).
        logging.getLogger("index_server").error("%s %s: %s", request.method, request.path, exc)
        return text_error(507, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 413:
            drain_body()
        messages = {
            404: f"not found: {request.path}",
            405: f"method {request.method} not allowed on {request.path}",
            413: f"upload too large: the limit is {config.max_upload} bytes",
        }
        resp = text_error(code, messages.get(code) or exc.description or exc.name)
        if code == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        return resp

    return app
