"""Pages for people: `/` (what the index holds and how to use it), `/project/<name>/` (files, and
what the farm pushed: the recipe, the build grid, logs, provenance), `/status` (the whole farm) and
`/project/<name>/logs/<log id>` (a build log, its failure class and key line first).

Plain server-rendered HTML from templates/, cached per catalog change like the simple pages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote

from flask import Blueprint, Response, redirect, render_template, request
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from index_server import distfile
from index_server.catalog import FileRecord
from index_server.errors import text_error
from index_server.farm import (
    FarmDataError,
    check_log_id,
    log_key,
    make_grid,
    strip_ansi,
)
from index_server.logview import view
from index_server.simple import file_url
from index_server.state import get_state

bp = Blueprint("pages", __name__)

OS_NAMES = {"manylinux": "Linux", "musllinux": "Linux (musl)", "linux": "Linux", "macosx": "macOS"}


@dataclass(frozen=True)
class FileRow:
    filename: str
    url: str
    kind: str
    python: str
    platform: str
    arch: str
    size: str
    uploaded: str
    yanked: str | None
    provenance: str | None = None  # URL of the wheel's provenance record


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def describe_platform(platform: str) -> tuple[str, str]:
    """(operating system, architecture) of a wheel platform tag."""
    if platform == "any":
        return "any", "any"
    if platform.startswith("win"):
        return "Windows", {"win32": "x86", "win_amd64": "x86_64"}.get(
            platform, platform.removeprefix("win_")
        )
    os_part = platform.split("_", 1)[0]
    if os_part.startswith("manylinux"):  # manylinux1, manylinux2010, manylinux2014
        os_part = "manylinux"
    for arch in (
        "x86_64",
        "universal2",
        "aarch64",
        "arm64",
        "ppc64le",
        "s390x",
        "i686",
        "armv7l",
        "riscv64",
    ):
        if platform.endswith(arch):
            return OS_NAMES.get(os_part, os_part), arch
    return OS_NAMES.get(os_part, os_part), platform.rsplit("_", 1)[-1]


def file_row(f: FileRecord) -> FileRow:
    if f.kind == "wheel":
        _name, _version, _build, tags = parse_wheel_filename(f.filename)
        pythons = sorted({t.interpreter for t in tags})
        described = sorted({describe_platform(t.platform) for t in tags})
        platform = ", ".join(sorted({d[0] for d in described}))
        arch = ", ".join(sorted({d[1] for d in described}))
        python = ", ".join(pythons)
    else:
        python, platform, arch = "source", "any", "any"
    return FileRow(
        filename=f.filename,
        url=file_url(get_state(), f),
        kind=f.kind,
        python=python,
        platform=platform,
        arch=arch,
        size=human_size(f.size),
        uploaded=f.upload_time[:16].replace("T", " "),
        yanked=f.yanked,
    )


def _base() -> str:
    return get_state().config.base_url or request.host_url.rstrip("/")


def _html(body: str) -> Response:
    config = get_state().config
    headers = {"Cache-Control": "private, max-age=60" if config.private else "max-age=60, public"}
    if not config.base_url:
        # Without --base-url the pages name the host that was asked (the Host header): a shared
        # cache must not hand one client's Host to another.
        headers = {"Cache-Control": "private, max-age=60", "Vary": "Host"}
    return Response(body, content_type="text/html; charset=utf-8", headers=headers)


_home_cache: dict[tuple, str] = {}


@bp.get("/")
def home() -> Response:
    st = get_state()
    key = (id(st), st.catalog.version, _base())
    if key not in _home_cache:
        _home_cache.clear()
        projects = st.catalog.projects()
        rows = [
            {
                "name": p.name,
                "latest": p.versions[-1] if p.versions else "",
                "files": len(p.files),
                "summary": next((f.summary for f in reversed(p.files) if f.summary), "") or "",
            }
            for p in projects
        ]
        _home_cache[key] = render_template(
            "index.html",
            base=_base(),
            projects=rows,
            n_files=sum(len(p.files) for p in projects),
            private=st.config.private,
            example=rows[0]["name"] if rows else "PROJECT",
        )
    return _html(_home_cache[key])


@bp.get("/project/<name>/")
def project(name: str) -> Response:
    normalized = distfile.project_name(name)
    if normalized is None:
        return text_error(404, f"no project named {name!r} in this index (not a valid name)")
    if normalized != name:
        return redirect(f"/project/{normalized}/", code=301)
    st = get_state()
    proj = st.catalog.project(normalized)
    farm = st.farm.status
    if proj is None and not (farm and farm.has_project(normalized)):
        return text_error(404, f"no project named {normalized!r} in this index")
    # Cached with the project (uploads and yanks replace it) and keyed by the farm data's version.
    cache = proj.cache if proj is not None else _farm_only_cache
    shadowed = bool(st.upstream.shadowed([normalized]))
    key = ("page", id(st), normalized, _base(), st.farm.version, shadowed)
    if key not in cache:
        for stale in [k for k in cache if isinstance(k, tuple) and k[0] == "page"]:
            del cache[stale]
        cache[key] = _render_project(st, normalized, proj, shadowed)
    return _html(cache[key])


_farm_only_cache: dict[tuple, str] = {}


def _render_project(st, name: str, proj, shadowed: bool) -> str:
    with_provenance = st.farm.provenance_of(name)
    by_version: dict[str, list[FileRow]] = {}
    for f in proj.files if proj else ():
        row = file_row(f)
        if f.filename in with_provenance:
            row = replace(
                row, provenance=f"{st.config.base_url}/provenance/{quote(f.filename)}.json"
            )
        by_version.setdefault(f.version, []).append(row)
    versions = sorted(by_version, key=Version, reverse=True)
    farm = st.farm.status
    cells = farm.by_project.get(name, []) if farm else []
    return render_template(
        "project.html",
        base=_base(),
        name=name,
        versions=[(v, by_version[v]) for v in versions],
        private=st.config.private,
        recipe=farm.recipes.get(name) if farm else None,
        grid=make_grid(cells) if cells else None,
        logs=st.farm.logs_of(name),
        provenance=with_provenance,
        files=bool(by_version),
        shadowed=shadowed,
        upstream=st.upstream.index_url if shadowed else "",
    )


@bp.get("/status")
def status() -> Response:
    st = get_state()
    shadowed = tuple(st.upstream.shadowed([p.name for p in st.catalog.projects()]))
    key = (id(st), st.farm.version, _base(), shadowed)
    if key not in _status_cache:
        _status_cache.clear()
        farm = st.farm.status
        _status_cache[key] = render_template(
            "status.html",
            shadowed=shadowed,
            upstream=st.upstream.index_url if shadowed else "",
            farm=farm,
            grid=make_grid(list(farm.cells)) if farm and farm.cells else None,
            failures=farm.failures() if farm else [],
            run=farm.run if farm else {},
        )
    return _html(_status_cache[key])


_status_cache: dict[tuple, str] = {}


def _stored_log(name: str, log_id: str, suffix: str = "") -> Response | tuple[str, bytes]:
    """(normalized name, the log's bytes), or the answer instead: a 404 for a bad name or a log
    the index does not have, a 301 to the normalized name's URL (+ `suffix`)."""
    normalized = distfile.project_name(name)
    if normalized is None:
        return text_error(404, f"no project named {name!r} in this index (not a valid name)")
    if normalized != name:
        return redirect(f"/project/{normalized}/logs/{quote(log_id)}{suffix}", code=301)
    try:
        check_log_id(log_id)
        return normalized, get_state().storage.read_bytes(log_key(normalized, log_id))
    except (FarmDataError, FileNotFoundError):
        return text_error(404, f"no build log {log_id!r} for project {normalized!r} in this index")


@bp.get("/project/<name>/logs/<log_id>")
def build_log(name: str, log_id: str) -> Response:
    found = _stored_log(name, log_id)
    if not isinstance(found, tuple):
        return found
    normalized, data = found
    farm = get_state().farm.status
    cell = farm.by_log.get((normalized, log_id)) if farm else None
    text = strip_ansi(data.decode("utf-8", errors="replace"))
    shown = view(text, cell.key_line if cell else None)
    return _html(
        render_template(
            "log.html",
            name=normalized,
            log_id=log_id,
            cell=cell,
            size=human_size(len(data)),
            view=shown,
            errors=shown.errors,
            has_key=any(s.has_key for s in shown.sections),
        )
    )


@bp.get("/project/<name>/logs/<log_id>/raw")
def raw_build_log(name: str, log_id: str) -> Response:
    """The log as it was pushed, as plain text (UTF-8; the browser never sniffs it as HTML)."""
    found = _stored_log(name, log_id, "/raw")
    if not isinstance(found, tuple):
        return found
    _, data = found
    resp = Response(data, mimetype="text/plain")
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
