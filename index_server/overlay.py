"""The overlay: one index URL (`/overlay/simple/`) that is a superset of the upstream index.

Each project page lists the upstream's files and this index's files together: the farm's wheels fill
the cells the upstream lacks (a farm file whose filename the upstream also has is not listed twice;
the upstream's copy wins). Clients that take a project from the first index that has it (uv, poetry's
primary source, pdm) then resolve correctly on every platform with this one URL.

- Upstream pages come through the shared upstream client (index_server.shadowing.Upstream, one
  `--upstream` setting) and its on-disk HTTP cache (ETag, max-age), revalidated at the latest after
  `upstream_max_stale` seconds whatever max-age the upstream gave.
- Upstream unreachable: the last good page from that cache is served, marked stale (header, page text,
  JSON `meta`); with no earlier page the answer is 503, never a page without the upstream's files.
- Private names: a farm project marked private (policy/private/, written by the upload policy, or here
  when the upstream answers 404 for a farm project) is served from the farm only, even after the
  upstream gains a project of that name; the page then warns (as /status does).
- Cooldown: upstream files uploaded less than `cooldown_days` ago are left out and counted.
- PEP 658 metadata: this index's own `.metadata` files; the upstream's are passed through (its
  `core-metadata` hashes, fetched from beside its files, or through the pull-through cache).
- `cache_upstream_files`: upstream file links point at /overlay/files/, which downloads each file once
  into the index storage (upstream-files/<sha256>/<filename>), verified against the upstream's sha256.

The root page lists this index's projects only: the upstream's project list is large (PyPI: 600k+
names) and no installer reads a root page to resolve, so project pages are fetched on demand instead.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Response, redirect, request
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version
from werkzeug.wsgi import wrap_file

from builder.common.fetch import FetchError, fetch_verified
from builder.common.upstream import DistFile, ProjectNotFound, ProjectPage, UpstreamError
from index_server import distfile, simple
from index_server.catalog import FileRecord, Project
from index_server.errors import text_error
from index_server.files import content_type
from index_server.state import State, get_state
from index_server.storage import AlreadyExists

PREFIX = "/overlay"
UPSTREAM_FILES = "upstream-files"
RETRY_DOWN = 10.0  # seconds (at most) between attempts to reach an upstream that did not answer
FRESH, STALE, PRIVATE, NO_UPSTREAM = "fresh", "stale", "private", "none"

bp = Blueprint("overlay", __name__)


class OverlayError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Entry:
    """One file of an overlay page, from either side, as PEP 691 describes it."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: str | None  # None: not yanked; a string (maybe empty): the reason
    size: int | None
    upload_time: str | None
    metadata: bool
    metadata_sha256: str | None
    origin: str  # "upstream" or "farm"

    def to_json(self) -> dict:
        meta: dict | bool = (
            {"sha256": self.metadata_sha256} if self.metadata_sha256 else self.metadata
        )
        entry: dict = {
            "filename": self.filename,
            "url": self.url,
            "hashes": {"sha256": self.sha256} if self.sha256 else {},
        }
        if self.requires_python:
            entry["requires-python"] = self.requires_python
        entry["core-metadata"] = meta
        entry["dist-info-metadata"] = meta
        entry["yanked"] = (self.yanked or True) if self.yanked is not None else False
        if self.size is not None:
            entry["size"] = self.size
        if self.upload_time:
            entry["upload-time"] = self.upload_time
        return entry

    def anchor(self) -> str:
        href = self.url + (f"#sha256={self.sha256}" if self.sha256 else "")
        attrs = [f'href="{escape(href)}"']
        if self.requires_python:
            attrs.append(f'data-requires-python="{escape(self.requires_python)}"')
        if self.yanked is not None:
            attrs.append(f'data-yanked="{escape(self.yanked)}"')
        if self.metadata:
            value = escape(f"sha256={self.metadata_sha256}" if self.metadata_sha256 else "true")
            attrs.append(f'data-dist-info-metadata="{value}"')
            attrs.append(f'data-core-metadata="{value}"')
        return f"    <a {' '.join(attrs)}>{escape(self.filename)}</a><br>\n"


@dataclass
class View:
    """A project's overlay page before rendering, with what the pull-through cache needs."""

    name: str
    entries: list[Entry]
    versions: list[str]
    upstream: str  # FRESH, STALE, PRIVATE or NO_UPSTREAM
    expires: float  # time.time() after which it is rebuilt
    hidden: int = 0  # upstream files left out by the cooldown
    stale_since: str | None = None
    warning: str | None = None
    upstream_files: dict[str, DistFile] = field(default_factory=dict)
    pages: dict[str, simple.Page] = field(default_factory=dict)

    def notes(self) -> list[str]:
        out = []
        if self.upstream == STALE:
            out.append(f"upstream unreachable: its files as of {self.stale_since} (last good page)")
        if self.hidden:
            out.append(f"{self.hidden} upstream file(s) hidden by the cooldown")
        if self.warning:
            out.append(self.warning)
        return out


# ---- building a view ----------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uploaded(upload_time: str | None) -> datetime | None:
    if not upload_time:
        return None
    try:
        when = datetime.fromisoformat(upload_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _farm_entry(st: State, f: FileRecord) -> Entry:
    return Entry(
        filename=f.filename,
        url=simple.file_url(st, f),
        sha256=f.sha256,
        requires_python=f.requires_python,
        yanked=f.yanked,
        size=f.size,
        upload_time=f.upload_time,
        metadata=bool(f.metadata_sha256),
        metadata_sha256=f.metadata_sha256,
        origin="farm",
    )


def _upstream_entry(st: State, name: str, f: DistFile) -> Entry:
    if st.config.cache_upstream_files:
        url = f"{st.config.base_url}{PREFIX}/files/{quote(name)}/{quote(f.filename)}"
    else:
        url = f.url
    return Entry(
        filename=f.filename,
        url=url,
        sha256=f.sha256,
        requires_python=f.requires_python,
        yanked=(f.yanked_reason or "") if f.yanked else None,
        size=f.size,
        upload_time=f.upload_time,
        metadata=f.core_metadata,
        metadata_sha256=f.core_metadata_hashes.get("sha256"),
        origin="upstream",
    )


def _parsed(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def _sorted_versions(versions: set[str]) -> list[str]:
    def key(v: str) -> tuple[int, Version | str]:
        try:
            return 0, Version(v)
        except InvalidVersion:
            return 1, v

    return sorted(versions, key=key)


def _farm_only(st: State, name: str, proj: Project, upstream: str, expires: float) -> View:
    return View(
        name=name,
        entries=[_farm_entry(st, f) for f in proj.files],
        versions=list(proj.versions),
        upstream=upstream,
        expires=expires,
    )


def build_view(st: State, name: NormalizedName) -> View | None:
    """The project's overlay page; None when neither side has the project (404). OverlayError when
    the upstream cannot answer and no earlier page of it is kept."""
    now = time.time()
    proj = st.catalog.project(name)
    up = st.upstream
    bound = st.config.upstream_max_stale
    if not up.enabled:
        return None if proj is None else _farm_only(st, name, proj, NO_UPSTREAM, now + bound)
    client = up.client()
    if proj is not None and up.is_private(name):
        view = _farm_only(st, name, proj, PRIVATE, now + min(bound, 60))
        with contextlib.suppress(UpstreamError):  # only to warn: ProjectNotFound is the good case
            client.project_entry(name, max_stale=bound)
            view.warning = (
                f"{up.index_url} now has a project named {name}: this private project is served "
                "from this index only, never merged with it"
            )
        return view
    try:
        page, resp = client.project_entry(name, max_stale=bound)
        state, stale_since = FRESH, None
        expires = resp.stored_at + min(resp.max_age, bound)
    except ProjectNotFound:
        if proj is None:
            return None
        up.mark_private(name)  # remembered: an upstream project of this name later never merges
        return _farm_only(st, name, proj, PRIVATE, now + min(bound, 60))
    except UpstreamError as exc:
        last = client.last_good(name)
        if last is None:
            raise OverlayError(
                503,
                f"the upstream index {up.index_url} cannot answer for {name} ({exc.problem}) and "
                "no earlier page of it is kept: try again later",
            ) from None
        page, resp = last
        state, stale_since = STALE, _iso(resp.stored_at)
        expires = now + min(RETRY_DOWN, bound)
    return _merge(st, name, proj, page, state, stale_since, expires)


def _merge(
    st: State,
    name: str,
    proj: Project | None,
    page: ProjectPage,
    state: str,
    stale_since: str | None,
    expires: float,
) -> View:
    cutoff = None
    if st.config.cooldown_days > 0:
        cutoff = datetime.now(UTC).timestamp() - st.config.cooldown_days * 86400
    entries: list[Entry] = []
    upstream_files: dict[str, DistFile] = {}
    hidden_versions: set[Version] = set()
    shown_versions: set[Version] = set()
    hidden = 0
    for f in page.files:
        version = f.version
        uploaded = _uploaded(f.upload_time)
        if cutoff is not None and uploaded is not None and uploaded.timestamp() > cutoff:
            hidden += 1
            if version is not None:
                hidden_versions.add(version)
            continue
        if version is not None:
            shown_versions.add(version)
        upstream_files[f.filename] = f
        entries.append(_upstream_entry(st, name, f))
    versions = {v for v in page.versions if _parsed(v) not in hidden_versions - shown_versions}
    if proj is not None:
        for record in proj.files:
            if record.filename not in upstream_files:
                entries.append(_farm_entry(st, record))
                versions.add(record.version)
    return View(
        name=name,
        entries=entries,
        versions=_sorted_versions(versions),
        upstream=state,
        expires=expires,
        hidden=hidden,
        stale_since=stale_since,
        upstream_files=upstream_files,
    )


_memo: dict[tuple[int, str], tuple[object, View]] = {}
_memo_lock = threading.Lock()
MEMO_MAX = 4096


def get_view(st: State, name: NormalizedName) -> View | None:
    """build_view, kept per worker until the view expires or the farm's project changes."""
    proj = st.catalog.project(name)
    stamp = id(proj) if proj is not None else None
    key = (id(st), name)
    hit = _memo.get(key)
    if hit is not None and hit[0] == stamp and time.time() < hit[1].expires:
        return hit[1]
    view = build_view(st, name)
    if view is not None:
        with _memo_lock:
            if len(_memo) >= MEMO_MAX:
                _memo.clear()
            _memo[key] = (stamp, view)
    return view


# ---- rendering ------------------------------------------------------------------------------------


def render_html(view: View) -> bytes:
    notes = "".join(f"    <p>{escape(n)}</p>\n" for n in view.notes())
    anchors = "".join(e.anchor() for e in view.entries)
    head = simple._head(f"Links for {view.name}")
    return (head + notes + anchors + "  </body>\n</html>\n").encode()


def render_json(view: View) -> bytes:
    meta: dict = {"api-version": simple.API_VERSION, "_wheelfarm-upstream": view.upstream}
    if view.stale_since:
        meta["_wheelfarm-upstream-as-of"] = view.stale_since
    if view.hidden:
        meta["_wheelfarm-cooldown-hidden"] = view.hidden
    if view.warning:
        meta["_wheelfarm-warning"] = view.warning
    body = {
        "meta": meta,
        "name": view.name,
        "versions": view.versions,
        "files": [e.to_json() for e in view.entries],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def page_of(view: View, media: str) -> simple.Page:
    page = view.pages.get(media)
    if page is None:
        body = render_json(view) if media == simple.JSON else render_html(view)
        page = view.pages[media] = simple.Page(body, simple._etag(body + media.encode()))
    return page


def _parts(
    st: State,
    page: simple.Page,
    media: str,
    view: View | None,
    if_none_match: str | None,
    accept_encoding: str | None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, body = simple.page_parts(st, page, media, if_none_match, accept_encoding)
    if view is not None:
        marked = view.upstream + (f"; as-of={view.stale_since}" if view.stale_since else "")
        headers.append(("X-Wheelfarm-Upstream", marked))
        if view.upstream == STALE:  # a client must not keep a stale page
            headers = [(k, "no-cache" if k == "Cache-Control" else v) for k, v in headers]
    return status, headers, body


def _answer(st: State, page: simple.Page, media: str, view: View | None = None) -> Response:
    status, headers, body = _parts(
        st,
        page,
        media,
        view,
        request.headers.get("If-None-Match"),
        request.headers.get("Accept-Encoding"),
    )
    return Response(body, status=status, headers=headers)


def fast_path(st: State, environ: dict) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """A plain GET of a project page whose view this worker holds and that has not expired, without
    Flask's dispatch (the same answer as `project`); None hands the request to Flask."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    path = environ.get("PATH_INFO", "")
    if not (path.startswith(f"{PREFIX}/simple/") and path.endswith("/") and path.count("/") == 4):
        return None
    name = path[len(PREFIX) + 8 : -1]
    hit = _memo.get((id(st), name))
    if hit is None or time.time() >= hit[1].expires:
        return None
    proj = st.catalog.project(name)
    if hit[0] != (id(proj) if proj is not None else None):
        return None
    media = simple.negotiate(environ.get("HTTP_ACCEPT"))
    if media is None:
        return None
    view = hit[1]
    status, headers, body = _parts(
        st,
        page_of(view, media),
        media,
        view,
        environ.get("HTTP_IF_NONE_MATCH"),
        environ.get("HTTP_ACCEPT_ENCODING"),
    )
    return status, headers, b"" if environ["REQUEST_METHOD"] == "HEAD" else body


# ---- views ---------------------------------------------------------------------------------------


def _root_body(st: State, media: str) -> bytes:
    projects = st.catalog.projects()
    if media == simple.JSON:
        return simple.render_index_json(projects)
    base = escape(st.config.base_url)
    links = "".join(
        f'    <a href="{base}{PREFIX}/simple/{escape(quote(p.name))}/">{escape(p.name)}</a><br>\n'
        for p in projects
    )
    return (simple._head("Overlay index") + links + "  </body>\n</html>\n").encode()


@bp.get(f"{PREFIX}/simple/")
def index() -> Response:
    media = simple.negotiate(request.headers.get("Accept"))
    if media is None:
        return simple._not_acceptable()
    st = get_state()
    body = _root_body(st, media)
    return _answer(st, simple.Page(body, simple._etag(body + media.encode())), media)


@bp.get(f"{PREFIX}/simple/<name>/")
def project(name: str) -> Response:
    normalized = distfile.project_name(name)
    if normalized is None:
        return text_error(404, f"no project named {name!r} (not a valid name)")
    st = get_state()
    if normalized != name:
        return redirect(f"{st.config.base_url}{PREFIX}/simple/{normalized}/", code=301)
    media = simple.negotiate(request.headers.get("Accept"))
    if media is None:
        return simple._not_acceptable()
    try:
        view = get_view(st, normalized)
    except OverlayError as exc:
        return text_error(exc.status, exc.message, {"Retry-After": "30"})
    if view is None:
        return text_error(404, f"no project named {normalized!r} here or upstream")
    return _answer(st, page_of(view, media), media, view)


@bp.get(f"{PREFIX}/files/<name>/<filename>")
def upstream_file(name: str, filename: str) -> Response:
    """An upstream file (or its PEP 658 .metadata) through the pull-through cache."""
    st = get_state()
    normalized = distfile.project_name(name)
    if not st.config.cache_upstream_files or normalized is None:
        return text_error(404, f"no file {name}/{filename} here (--cache-upstream-files is off)")
    try:
        view = get_view(st, normalized)
    except OverlayError as exc:
        return text_error(exc.status, exc.message, {"Retry-After": "30"})
    dist_name = filename.removesuffix(".metadata")
    dist = view.upstream_files.get(dist_name) if view is not None else None
    if dist is None or (dist_name != filename and not dist.core_metadata):
        return text_error(404, f"no upstream file {normalized}/{filename} on the overlay page")
    if dist_name != filename:
        url, sha256 = dist.url + ".metadata", dist.core_metadata_hashes.get("sha256")
    else:
        url, sha256 = dist.url, dist.sha256
    if not sha256:
        return text_error(
            502, f"the upstream gives no sha256 for {filename}: not cached unverified"
        )
    key = f"{UPSTREAM_FILES}/{sha256.lower()}/{filename}"
    if not st.storage.exists(key):
        try:
            _pull(st, url, sha256, filename, key)
        except (UpstreamError, FetchError) as exc:
            return text_error(502, f"could not fetch {filename} from the upstream: {exc}")
    stat = st.storage.stat(key)
    resp = Response(wrap_file(request.environ, st.storage.open(key)), direct_passthrough=True)
    resp.headers["Content-Type"] = content_type(filename)
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    resp.content_length = stat.size if stat else None
    resp.set_etag(sha256.lower())
    return resp.make_conditional(request, accept_ranges=True, complete_length=resp.content_length)


def _pull(st: State, url: str, sha256: str, filename: str, key: str) -> None:
    """Download once, verified by sha256 (fetch_verified), then store it under its digest."""
    path = fetch_verified(url, sha256, cache="overlay-pull", filename=filename)
    try:
        with open(path, "rb") as fh, contextlib.suppress(AlreadyExists):
            st.storage.put_atomic(key, fh, overwrite=False)  # another worker may have won
    finally:
        Path(path).unlink(missing_ok=True)
