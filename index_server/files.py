"""Serving distribution files and their PEP 658 `.metadata` with ETag, conditional GET and Range.

Only files the catalog has published are served, so a file whose upload was cut short is never seen.
"""

from __future__ import annotations

import io
from datetime import datetime

from flask import Blueprint, Response, redirect, request
from werkzeug.http import http_date
from werkzeug.wsgi import wrap_file

from index_server.catalog import file_key
from index_server.errors import text_error
from index_server.state import get_state

bp = Blueprint("files", __name__)


def content_type(filename: str) -> str:
    if filename.endswith(".metadata"):
        return "text/plain; charset=utf-8"
    if filename.endswith(".whl"):
        return "application/zip"
    # Compressed files are served as they are: no Content-Encoding, or clients would unpack them
    # in transit.
    for ext, ctype in ARCHIVE_TYPES.items():
        if filename.endswith(ext):
            return ctype
    return "application/octet-stream"


ARCHIVE_TYPES = {
    ".tar.gz": "application/gzip",
    ".tgz": "application/gzip",
    ".tar.bz2": "application/x-bzip2",
    ".tbz": "application/x-bzip2",
    ".tar.xz": "application/x-xz",
    ".txz": "application/x-xz",
    ".tar": "application/x-tar",
    ".zip": "application/zip",
}


def _find(st, project: str, filename: str):
    """(record, storage key, ETag, size, body) of a published file or its .metadata, else None.
    body: the .metadata's bytes (the catalog has them, in the Storage or the database); None for a
    file, which is opened from the Storage under its key."""
    proj = st.catalog.project(project)
    dist_name = filename.removesuffix(".metadata")
    record = proj.get(dist_name) if proj else None
    if record is None:
        return None
    if dist_name != filename:
        body = st.catalog.read_metadata(record)
        if body is None:
            return None
        return record, None, record.metadata_sha256, len(body), body
    return record, file_key(record.project, filename), record.sha256, record.size, None


def _open(st, key: str | None, body: bytes | None):
    return io.BytesIO(body) if body is not None else st.storage.open(key)


def _headers(st, record, filename: str) -> dict[str, str]:
    scope = "private" if st.config.private else "public"
    return {
        "Content-Type": content_type(filename),
        # Files never change once stored (yanking changes pages, not files).
        "Cache-Control": f"{scope}, max-age=31536000, immutable",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Accept-Ranges": "bytes",
    }


@bp.get("/files/<project>/<filename>")
def serve(project: str, filename: str) -> Response:
    st = get_state()
    found = _find(st, project, filename)
    if found is None:
        return text_error(404, f"no file {project}/{filename} in this index")
    record, key, etag, size, body = found
    if key is not None and (url := st.storage.download_url(key)) is not None:
        # The object store sends the bytes (a pre-signed URL); the index only says where.
        resp = redirect(url, code=302)
        resp.headers["Cache-Control"] = "no-store"
        return resp
    try:
        fh = _open(st, key, body)
    except FileNotFoundError:
        return text_error(404, f"no file {project}/{filename} in this index")
    resp = Response(wrap_file(request.environ, fh), direct_passthrough=True)
    resp.headers.update(_headers(st, record, filename))
    resp.content_length = size
    resp.set_etag(etag)
    resp.last_modified = _last_modified(record)
    return resp.make_conditional(request, accept_ranges=True, complete_length=size)


def _last_modified(record) -> datetime:
    return datetime.fromisoformat(record.upload_time.replace("Z", "+00:00"))


def fast_path(st, environ: dict):
    """A plain GET of a whole file (no Range, no conditions) without Flask's dispatch; None hands
    the request to Flask."""
    if environ.get("REQUEST_METHOD") != "GET" or any(
        h in environ
        for h in (
            "HTTP_RANGE",
            "HTTP_IF_NONE_MATCH",
            "HTTP_IF_MODIFIED_SINCE",
            "HTTP_IF_RANGE",
            "HTTP_IF_MATCH",
        )
    ):
        return None
    parts = environ.get("PATH_INFO", "").split("/")
    if len(parts) != 4 or parts[1] != "files":
        return None
    found = _find(st, parts[2], parts[3])
    if found is None:
        return None
    record, key, etag, size, body = found
    if key is not None and (url := st.storage.download_url(key)) is not None:
        # The object store sends the bytes; the same answer as the Flask view's.
        return 302, [("Location", url), ("Cache-Control", "no-store"), ("Content-Length", "0")], b""
    try:
        fh = _open(st, key, body)
    except FileNotFoundError:
        return None
    headers = _headers(st, record, parts[3])
    headers["Content-Length"] = str(size)
    headers["ETag"] = f'"{etag}"'
    headers["Last-Modified"] = http_date(_last_modified(record))
    return 200, list(headers.items()), wrap_file(environ, fh)
