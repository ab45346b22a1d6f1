"""What hatch and devpi-style clients ask of an upload URL before uploading: `<upload URL>/+simple/`
and `<upload URL>/+simple/<project>/` (devpi's layout). They list the files already there so that
a second `hatch publish` skips them instead of stopping on 409. Same answers as /simple/."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request

from index_server import distfile, simple
from index_server.errors import text_error
from index_server.state import get_state

UPLOAD_SIMPLE = "/legacy/+simple"

bp = Blueprint("devpi_compat", __name__)


@bp.get(f"{UPLOAD_SIMPLE}/")
def index() -> Response:
    return simple.index()


@bp.get(f"{UPLOAD_SIMPLE}/<name>/")
def project(name: str) -> Response:
    normalized = distfile.project_name(name)
    if normalized is None:
        return text_error(404, f"no project named {name!r} in this index (not a valid name)")
    st = get_state()
    if normalized != name:
        return redirect(f"{st.config.base_url}{UPLOAD_SIMPLE}/{normalized}/", code=301)
    media = simple.negotiate(request.headers.get("Accept"))
    if media is None:
        return simple._not_acceptable()
    hit = simple.cached_page(st, normalized, media)
    if hit is None:
        return text_error(404, f"no project named {normalized!r} in this index")
    return simple._answer(st, hit, media)
