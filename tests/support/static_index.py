"""A static PEP 691 + PEP 503 index written as files and served by a tiny real HTTP server.

The tests (and bench/plan_bench.py) write projects with `write_static_index`, then serve the folder with
`StaticIndexServer` (a ThreadingHTTPServer on 127.0.0.1 in a thread) or, in its own process, with
`python tests/support/static_index.py ROOT`. The server negotiates JSON/HTML from the Accept header,
answers If-None-Match with 304, and can misbehave on purpose per path: sleep, fail N times with 503,
answer garbage, or ignore JSON (an HTML-only index). It counts every request it receives.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import html
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclass
class FileSpec:
    filename: str
    content: bytes = b""
    requires_python: str | None = None
    yanked: bool | str = False
    upload_time: str | None = "2023-01-01T00:00:00Z"
    core_metadata: bool = False  # serve a wheel's METADATA beside it as <file>.metadata (PEP 658)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def write_static_index(root: Path, projects: dict[str, list[FileSpec]]) -> None:
    """Write root/simple/<name>/{index.json,index.html}, root/simple/index.*, root/files/<file>."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    names = sorted(canonicalize_name(n) for n in projects)
    for name, files in projects.items():
        canon = canonicalize_name(name)
        page = root / "simple" / canon
        page.mkdir(parents=True, exist_ok=True)
        entries, anchors = [], []
        for f in files:
            (root / "files" / f.filename).write_bytes(f.content)
            entry: dict = {
                "filename": f.filename,
                "url": f"../../files/{f.filename}",
                "hashes": {"sha256": f.sha256},
                "size": len(f.content),
                "upload-time": f.upload_time,
            }
            attrs = ""
            if f.core_metadata:
                digest = _write_metadata(root / "files" / f.filename)
                entry["core-metadata"] = {"sha256": digest}
                attrs += f' data-core-metadata="sha256={digest}"'
            if f.requires_python:
                entry["requires-python"] = f.requires_python
                attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
            if f.yanked:
                entry["yanked"] = f.yanked
                reason = f.yanked if isinstance(f.yanked, str) else ""
                attrs += f' data-yanked="{html.escape(reason)}"'
            entries.append(entry)
            href = f"../../files/{f.filename}#sha256={f.sha256}"
            anchors.append(f'<a href="{href}"{attrs}>{html.escape(f.filename)}</a><br>')
        doc = {"meta": {"api-version": "1.1"}, "name": canon, "files": entries}
        doc["versions"] = sorted(
            {str(v) for f in files if (v := _version(f.filename))}, key=Version
        )
        (page / "index.json").write_text(json.dumps(doc))
        (page / "index.html").write_text(
            "<!DOCTYPE html><html><head>"
            '<meta name="pypi:repository-version" content="1.1">'
            f"<title>Links for {canon}</title></head><body><h1>Links for {canon}</h1>"
            + "\n".join(anchors)
            + "</body></html>"
        )
    index = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
    (root / "simple").mkdir(parents=True, exist_ok=True)
    (root / "simple" / "index.json").write_text(json.dumps(index))
    links = "".join(f'<a href="{n}/">{n}</a>' for n in names)
    (root / "simple" / "index.html").write_text(f"<html><body>{links}</body></html>")


def _write_metadata(wheel: Path) -> str:
    """Write the wheel's .dist-info/METADATA to <wheel>.metadata; return its sha256."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        (name,) = [
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        data = zf.read(name)
    wheel.with_name(wheel.name + ".metadata").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def choose_type(accept: str | None) -> str | None:
    """Pick JSON or HTML from an Accept header by q-value; None if neither is acceptable."""
    if not accept:
        return HTML_TYPE
    prefs: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        prefs[media.lower()] = q
    options = {
        JSON_TYPE: prefs.get(JSON_TYPE, 0.0),
        HTML_TYPE: max(prefs.get(HTML_TYPE, 0.0), prefs.get("text/html", 0.0) * 0.99),
    }
    if "*/*" in prefs:
        options[HTML_TYPE] = max(options[HTML_TYPE], prefs["*/*"] * 0.98)
    best = max(options, key=lambda k: options[k])
    return best if options[best] > 0 else None


@dataclass
class Behaviour:
    """How the server misbehaves for one path."""

    sleep: float = 0.0  # seconds before answering
    fail_first: int = 0  # answer fail_status to this many requests first
    fail_status: int = 503
    retry_after: str | None = None  # a Retry-After header on those failures
    garbage: bool = False  # answer the JSON type with a body that is not JSON
    html_only: bool = False  # an old index: ignores Accept and always serves text/html
    status: int | None = None  # always answer with this status


@dataclass
class State:
    root: Path
    cache_control: str = "max-age=0"
    requests: collections.Counter = field(default_factory=collections.Counter)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.requests.values())


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/_stats":
                with state.lock:
                    body = json.dumps(dict(state.requests)).encode()
                self._send(200, body, "application/json")
                return
            with state.lock:
                state.requests[path] += 1
                count = state.requests[path]
            b = state.behaviours.get(path, Behaviour())
            if b.sleep:
                time.sleep(b.sleep)
            if b.status:
                self._send(b.status, b"nope\n", "text/plain")
                return
            if count <= b.fail_first:
                extra = {"Retry-After": b.retry_after} if b.retry_after else None
                self._send(b.fail_status, b"try again\n", "text/plain", extra)
                return
            if path.startswith("/files/"):
                f = state.root / "files" / path.removeprefix("/files/")
                if f.is_file():
                    self._send(200, f.read_bytes(), "application/octet-stream")
                else:
                    self._send(404, b"not found\n", "text/plain")
                return
            if not (path.startswith("/simple/") and path.endswith("/")):
                self._send(404, b"not found\n", "text/plain")
                return
            folder = state.root / path.strip("/")
            ctype = "text/html" if b.html_only else choose_type(self.headers.get("Accept"))
            if ctype is None:
                self._send(406, b"not acceptable\n", "text/plain")
                return
            name = "index.json" if ctype == JSON_TYPE else "index.html"
            if not (folder / name).is_file():
                self._send(404, b"not found\n", "text/plain")
                return
            body = (folder / name).read_bytes()
            if b.garbage:
                body = b'{"files": [ this is not json'
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers = {"ETag": etag, "Cache-Control": state.cache_control, "Vary": "Accept"}
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(200, body, ctype, headers)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (a timeout test) closes the socket mid-answer: that is expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StaticIndexServer:
    """Serve a static index folder on 127.0.0.1 in a background thread."""

    def __init__(self, root: Path, cache_control: str = "max-age=0") -> None:
        self.state = State(root, cache_control)
        self.httpd = _Server(("127.0.0.1", 0), make_handler(self.state))
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/simple/"

    @property
    def requests(self) -> collections.Counter:
        return self.state.requests

    def behave(self, path: str, **kwargs: object) -> None:
        self.state.behaviours[path] = Behaviour(**kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> StaticIndexServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a static PEP 691/503 index folder.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--cache-control", default="max-age=0")
    args = parser.parse_args(argv)
    server = StaticIndexServer(args.root, args.cache_control)
    print(server.url, flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
