"""The simple repository API: PEP 503 HTML and PEP 691 JSON, chosen by content negotiation.

Also carries PEP 592 (yanked), PEP 658/714 (core metadata), PEP 700 (versions, size, upload-time).
Pages are rendered once per project change and kept with the catalog's Project, with an ETag each.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from html import escape
from urllib.parse import quote

from flask import Blueprint, Response, redirect, request
from packaging.utils import canonicalize_name

from index_server import distfile
from index_server.catalog import FileRecord, Project
from index_server.errors import text_error
from index_server.state import State, get_state

API_VERSION = "1.1"
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# Offered in server preference order: with equal client quality the first wins, so HTML is the default.
OFFERS = (TEXT_HTML, HTML, JSON)
ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON,
    "application/vnd.pypi.simple.latest+html": HTML,
}

bp = Blueprint("simple", __name__)


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with for this Accept header, or None (406).

    Follows RFC 9110: q-values, q=0 refuses, the most specific matching range sets a type's quality,
    ties go to the server's order (HTML first). No Accept header means HTML.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        media = ALIASES.get(media.lower(), media.lower())
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        major, _, minor = media.partition("/")
        ranges.append((major, minor, q))
    best, best_q = None, 0.0
    for offer in OFFERS:
        o_major, _, o_minor = offer.partition("/")
        quality, specificity = None, -1
        for major, minor, q in ranges:
            if major == o_major and minor == o_minor:
                spec = 2
            elif major == o_major and minor == "*":
                spec = 1
            elif major == "*" and minor == "*":
                spec = 0
            else:
                continue
            if spec > specificity:
                quality, specificity = q, spec
        if quality is not None and quality > best_q:
            best, best_q = offer, quality
    return best


def file_url(st: State, record: FileRecord) -> str:
    return f"{st.config.base_url}/files/{quote(record.project)}/{quote(record.filename)}"


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _head(title: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n    <h1>{escape(title)}</h1>\n"
    )


def render_index_html(st: State, projects: list[Project]) -> bytes:
    base = st.config.base_url
    links = "".join(
        f'    <a href="{escape(base)}/simple/{escape(quote(p.name))}/">{escape(p.name)}</a><br>\n'
        for p in projects
    )
    return (_head("Simple index") + links + "  </body>\n</html>\n").encode()


def render_index_json(projects: list[Project]) -> bytes:
    body = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p.name} for p in projects]}
    return json.dumps(body, separators=(",", ":")).encode()


def render_project_html(st: State, project: Project) -> bytes:
    lines = []
    for f in project.files:
        attrs = [f'href="{escape(file_url(st, f))}#sha256={escape(f.sha256)}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
        if f.yanked is not None:
            attrs.append(f'data-yanked="{escape(f.yanked)}"')
        if f.metadata_sha256:
            digest = escape(f.metadata_sha256)
            attrs.append(f'data-dist-info-metadata="sha256={digest}"')
            attrs.append(f'data-core-metadata="sha256={digest}"')
        lines.append(f"    <a {' '.join(attrs)}>{escape(f.filename)}</a><br>\n")
    return (_head(f"Links for {project.name}") + "".join(lines) + "  </body>\n</html>\n").encode()


def file_json(st: State, f: FileRecord) -> dict:
    metadata: dict | bool = {"sha256": f.metadata_sha256} if f.metadata_sha256 else False
    entry: dict = {
        "filename": f.filename,
        "url": file_url(st, f),
        "hashes": {"sha256": f.sha256},
    }
    if f.requires_python:
        entry["requires-python"] = f.requires_python
    entry["core-metadata"] = metadata
    entry["dist-info-metadata"] = metadata
    entry["yanked"] = (f.yanked or True) if f.yanked is not None else False
    entry["size"] = f.size
    entry["upload-time"] = f.upload_time
    return entry


def render_project_json(st: State, project: Project) -> bytes:
    body = {
        "meta": {"api-version": API_VERSION},
        "name": project.name,
        "versions": project.versions,
        "files": [file_json(st, f) for f in project.files],
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Page:
    """A rendered page, its ETag, and (made on first demand) its gzip encoding."""

    __slots__ = ("_gzipped", "body", "etag")

    def __init__(self, body: bytes, etag: str) -> None:
        self.body, self.etag = body, etag
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


GZIP_MIN = 1024  # smaller pages are not worth compressing


def accepts_gzip(accept_encoding: str | None) -> bool:
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return False
    return False


def page_parts(
    st: State,
    page: Page,
    media: str,
    if_none_match: str | None,
    accept_encoding: str | None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a page answer (shared by the Flask views and the fast path)."""
    private = st.config.private
    use_gzip = len(page.body) >= GZIP_MIN and accepts_gzip(accept_encoding)
    etag = page.etag + ("-gz" if use_gzip else "")
    headers = [
        (
            "Vary",
            "Accept, Accept-Encoding, Authorization" if private else "Accept, Accept-Encoding",
        ),
        ("ETag", f'"{etag}"'),
        ("Cache-Control", "private, max-age=60" if private else "max-age=60, public"),
    ]
    if if_none_match and (
        if_none_match.strip() == "*"
        or f'"{etag}"' in (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    ):
        return 304, headers, b""
    body = page.gzipped() if use_gzip else page.body
    headers.append(("Content-Type", "text/html; charset=utf-8" if media == TEXT_HTML else media))
    if use_gzip:
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return 200, headers, body


def cached_page(st: State, name: str | None, media: str) -> Page | None:
    """The rendered /simple/ page (name None) or a project page; None: no such project."""
    if name is None:
        key = (id(st), st.catalog.version, media)
        hit = _index_cache.get(key)
        if hit is None:
            _index_cache.clear()
            projects = st.catalog.projects()
            body = render_index_json(projects) if media == JSON else render_index_html(st, projects)
            hit = _index_cache[key] = Page(body, _etag(body + media.encode()))
        return hit
    proj = st.catalog.project(name)
    if proj is None:
        return None
    hit = proj.cache.get(media)
    if hit is None:
        body = render_project_json(st, proj) if media == JSON else render_project_html(st, proj)
        hit = proj.cache[media] = Page(body, _etag(body + media.encode()))
    return hit


_index_cache: dict[tuple[int, int, str], Page] = {}


def _answer(st: State, page: Page, media: str) -> Response:
    status, headers, body = page_parts(
        st,
        page,
        media,
        request.headers.get("If-None-Match"),
        request.headers.get("Accept-Encoding"),
    )
    return Response(body, status=status, headers=headers)


@bp.get("/simple/")
def index() -> Response:
    media = negotiate(request.headers.get("Accept"))
    if media is None:
        return _not_acceptable()
    st = get_state()
    return _answer(st, cached_page(st, None, media), media)  # type: ignore[arg-type]


@bp.get("/simple/<name>/")
def project(name: str) -> Response:
    normalized = distfile.project_name(name)
    if normalized is None:
        return text_error(404, f"no project named {name!r} in this index (not a valid name)")
    if normalized != name:
        return redirect(f"{get_state().config.base_url}/simple/{normalized}/", code=301)
    media = negotiate(request.headers.get("Accept"))
    if media is None:
        return _not_acceptable()
    st = get_state()
    hit = cached_page(st, normalized, media)
    if hit is None:
        return text_error(404, f"no project named {normalized!r} in this index")
    return _answer(st, hit, media)


def _not_acceptable() -> Response:
    return text_error(
        406, f"cannot answer Accept: {request.headers.get('Accept')}; offered: {', '.join(OFFERS)}"
    )


def fast_path(st: State, environ: dict) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Answer a plain GET of a cached simple page without Flask's dispatch (the hot path of an
    index); None hands the request to Flask (redirects, errors, anything unusual)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    path = environ.get("PATH_INFO", "")
    if path == "/simple/":
        name = None
    elif path.startswith("/simple/") and path.endswith("/") and path.count("/") == 3:
        name = path[8:-1]
        if canonicalize_name(name) != name:
            return None
    else:
        return None
    media = negotiate(environ.get("HTTP_ACCEPT"))
    if media is None:
        return None
    hit = cached_page(st, name, media)
    if hit is None:
        return None
    status, headers, body = page_parts(
        st, hit, media, environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_ACCEPT_ENCODING")
    )
    return status, headers, b"" if environ["REQUEST_METHOD"] == "HEAD" else body
