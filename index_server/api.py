"""A small authenticated JSON API for maintainers: yank and un-yank (PEP 592).

POST /api/projects/<project>/yank    {"target": "<filename or version>", "reason": "..."}
POST /api/projects/<project>/unyank  {"target": "<filename or version>"}
Both need an upload token (HTTP Basic, user __token__); they answer the changed files as JSON.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from index_server.auth import TokenRefused, require_upload_token
from index_server.errors import text_error, unauthorized
from index_server.state import get_state

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


def _change(project: str, reason: str | None) -> Response:
    try:
        token = require_upload_token(
            get_state().tokens,
            request.headers.get("Authorization"),
            missing="yanking needs an upload token: HTTP Basic with user __token__",
            verb="yank",
        )
    except TokenRefused as exc:
        return unauthorized(exc.message) if exc.code == 401 else text_error(exc.code, exc.message)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("target"), str):
        return text_error(400, 'expected a JSON object {"target": "<filename or version>", ...}')
    if reason is not None:
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            return text_error(400, "reason must be a string")
    try:
        changed = get_state().catalog.set_yanked(project, body["target"], reason)
    except LookupError as exc:
        return text_error(404, str(exc.args[0]))
    log.info(
        "%s %s by token %s",
        "yanked" if reason is not None else "un-yanked",
        ", ".join(f.filename for f in changed),
        token.name,
    )
    return jsonify(
        {
            "project": changed[0].project,
            "files": [{"filename": f.filename, "yanked": f.yanked} for f in changed],
        }
    )


@bp.post("/api/projects/<project>/yank")
def yank(project: str) -> Response:
    return _change(project, "")


@bp.post("/api/projects/<project>/unyank")
def unyank(project: str) -> Response:
    return _change(project, None)
