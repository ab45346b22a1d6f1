"""Serving distribution files and their PEP 658 `.metadata` with ETag, conditional GET and Range.

Only files the catalog has published are served, so a file whose upload was cut short is never seen.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from index_server.app import state, text_error
from index_server.catalog import file_key

bp = Blueprint("files", __name__)


def content_type(filename: str) -> str:
    if filename.endswith(".metadata"):
        return "text/plain; charset=utf-8"
    if filename.endswith(".whl"):
        return "application/zip"
    if filename.endswith(".tar.gz"):
        # A gzip file, served as is: no Content-Encoding, or clients would unpack it in transit.
        return "application/gzip"
    return "application/octet-stream"


@bp.get("/files/<project>/<filename>")
def serve(project: str, filename: str) -> Response:
    st = state()
    proj = st.catalog.project(project)
    dist_name = filename.removesuffix(".metadata")
    record = proj.get(dist_name) if proj else None
    is_metadata = dist_name != filename
    if record is None or (is_metadata and not record.metadata_sha256):
        return text_error(404, f"no file {project}/{filename} in this index")
    etag = record.metadata_sha256 if is_metadata else record.sha256
    key = file_key(record.project, filename)
    try:
        fh = st.storage.open(key)
    except FileNotFoundError:
        return text_error(404, f"no file {project}/{filename} in this index")
    size = record.size if not is_metadata else st.storage.stat(key).size  # type: ignore[union-attr]
    resp = Response(
        wrap_file(request.environ, fh),
        mimetype=None,
        content_type=content_type(filename),
        direct_passthrough=True,
    )
    resp.content_length = size
    resp.set_etag(etag)
    resp.last_modified = datetime.fromisoformat(record.upload_time.replace("Z", "+00:00"))
    scope = "private" if st.config.private else "public"
    # Files never change once stored (yanking changes pages, not files).
    resp.headers["Cache-Control"] = f"{scope}, max-age=31536000, immutable"
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp.make_conditional(request, accept_ranges=True, complete_length=size)
