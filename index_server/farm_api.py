"""The farm's authenticated API (the nightly pushes what the pages show) and the provenance files.

PUT /api/farm/status                        the farm's whole state, JSON (farm_status.schema.json)
GET /api/farm/status                        the stored document (public, or with a token when private)
PUT /api/farm/logs/<project>/<log id>       a build log, text/plain
PUT /api/farm/provenance/<wheel filename>   a stored wheel's provenance, JSON (provenance.schema.json)
GET /provenance/<wheel filename>.json       the provenance as stored (public, or with a token when private)

The PUTs need an upload token (HTTP Basic, user __token__), like uploads; every refusal is a 4xx whose
text says why, and nothing is written. Bodies are read only up to their limit (index_server/farm.py).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.wsgi import LimitedStream

from builder.common.farm_protocol import MAX_LOG_BYTES, MAX_PROVENANCE_BYTES, MAX_STATUS_BYTES
from index_server import distfile
from index_server.auth import TokenRefused, require_upload_token
from index_server.errors import BODY_READ, refuse_unread, text_error, unauthorized
from index_server.farm import (
    FarmDataError,
    check_log_id,
    check_time,
    log_key,
    parse_json,
    parse_status,
    project_name,
    provenance_key,
    validate,
)
from index_server.state import get_state

bp = Blueprint("farm_api", __name__)
log = logging.getLogger(__name__)


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _token_name() -> str:
    try:
        token = require_upload_token(
            get_state().tokens,
            request.headers.get("Authorization"),
            missing="the farm API needs an upload token: HTTP Basic with user __token__",
            verb="write farm data",
        )
    except TokenRefused as exc:
        raise Refused(exc.code, exc.message) from None
    return token.name


def _body(limit: int, what: str, mimetypes: tuple[str, ...]) -> bytes:
    if request.mimetype not in mimetypes:
        raise Refused(
            415, f"{what}: expected Content-Type {' or '.join(mimetypes)}, got {request.mimetype!r}"
        )
    length = request.content_length
    if length is None:
        raise Refused(411, f"{what}: send a Content-Length")
    if length > limit:
        raise Refused(413, f"{what} too large: {length} bytes, the limit is {limit} bytes")
    # Read the WSGI stream ourselves: the app-wide limit is the upload limit, not this one.
    data = LimitedStream(request.environ["wsgi.input"], length).read()
    request.environ[BODY_READ] = True
    if len(data) != length:
        raise Refused(400, f"{what}: the body ended after {len(data)} of {length} bytes")
    return data


def _answer(handler, *args) -> Response:
    try:
        return handler(*args)
    except (Refused, FarmDataError) as exc:
        code, message = (exc.code, exc.message) if isinstance(exc, Refused) else (400, str(exc))
        log.warning("refused %s %s (%d): %s", request.method, request.path, code, message)
        return refuse_unread(unauthorized(message) if code == 401 else text_error(code, message))


def _url(path: str) -> str:
    return get_state().config.base_url + path


# -- status --------------------------------------------------------------------------------------
@bp.put("/api/farm/status")
def put_status() -> Response:
    return _answer(_put_status)


def _put_status() -> Response:
    token = _token_name()
    data = _body(MAX_STATUS_BYTES, "the status document", ("application/json",))
    status = parse_status(data)
    st = get_state()
    st.farm.status_store.write(data)
    st.farm.stored()
    log.info("farm status stored: %d cells (token %s)", len(status.cells), token)
    return jsonify(
        {
            "generated": status.generated,
            "cells": len(status.cells),
            "recipes": len(status.recipes),
            "url": _url("/status"),
        }
    )


@bp.get("/api/farm/status")
def get_status() -> Response:
    """The stored status document as pushed (readable like /status)."""
    data = get_state().farm.status_store.read()
    if data is None:
        return text_error(404, "no farm status has been pushed to this index")
    scope = "private" if get_state().config.private else "public"
    return Response(
        data, content_type="application/json", headers={"Cache-Control": f"{scope}, max-age=60"}
    )


# -- logs ----------------------------------------------------------------------------------------
@bp.put("/api/farm/logs/<project>/<log_id>")
def put_log(project: str, log_id: str) -> Response:
    return _answer(_put_log, project, log_id)


def _put_log(project: str, log_id: str) -> Response:
    token = _token_name()
    name = project_name(project)
    check_log_id(log_id)
    data = _body(MAX_LOG_BYTES, "the log", ("text/plain",))
    st = get_state()
    st.storage.put_bytes(log_key(name, log_id), data)
    st.farm.stored()
    log.info("farm log %s/%s stored (%d bytes, token %s)", name, log_id, len(data), token)
    return jsonify(
        {
            "project": name,
            "log": log_id,
            "size": len(data),
            "url": _url(f"/project/{name}/logs/{log_id}"),
        }
    )


# -- provenance ----------------------------------------------------------------------------------
def _wheel_name(filename: str) -> distfile.DistName:
    try:
        name = distfile.parse_filename(filename)
    except distfile.InvalidDistribution as exc:
        raise FarmDataError(str(exc)) from None
    if name.kind != "wheel":
        raise FarmDataError(f"{filename!r} is not a wheel: provenance is kept for wheels only")
    return name


@bp.put("/api/farm/provenance/<filename>")
def put_provenance(filename: str) -> Response:
    return _answer(_put_provenance, filename)


def _put_provenance(filename: str) -> Response:
    token = _token_name()
    name = _wheel_name(filename)
    st = get_state()
    project = st.catalog.project(name.project)
    # Stored under its canonical filename (distfile.DistName); the farm may name it as built.
    stored = (project.get(filename) or project.get(name.filename)) if project else None
    if stored is None:
        raise Refused(404, f"no wheel {filename} in this index: upload it before its provenance")
    record = parse_json(
        _body(MAX_PROVENANCE_BYTES, "the provenance record", ("application/json",)),
        "the provenance record",
    )
    validate(record, "provenance.schema.json", "the provenance record")
    check_time(record["build_time"], "build_time")
    if record.get("wheel", filename) not in (filename, stored.filename):
        raise FarmDataError(f"the record names wheel {record['wheel']!r}, not {filename!r}")
    filename = stored.filename
    if record.get("wheel_sha256", stored.sha256) != stored.sha256:
        raise Refused(
            409,
            f"the record is for other bytes (wheel_sha256 {record['wheel_sha256']}); "
            f"the stored {filename} has sha256 {stored.sha256}",
        )
    record = {**record, "wheel": filename, "wheel_sha256": stored.sha256}
    st.storage.put_bytes(
        provenance_key(name.project, filename), json.dumps(record, indent=2).encode() + b"\n"
    )
    st.farm.stored()
    log.info("provenance of %s stored (token %s)", filename, token)
    return jsonify({"wheel": filename, "url": _url(f"/provenance/{filename}.json")})


@bp.get("/provenance/<filename>")
def get_provenance(filename: str) -> Response:
    wheel = filename.removesuffix(".json")
    try:
        if wheel == filename:
            raise FarmDataError(f"provenance URLs end in .json: /provenance/{filename}.json")
        name = _wheel_name(wheel)
        data = get_state().storage.read_bytes(provenance_key(name.project, wheel))
    except FarmDataError as exc:
        return text_error(404, str(exc))
    except FileNotFoundError:
        return text_error(404, f"no provenance record for {wheel} in this index")
    scope = "private" if get_state().config.private else "public"
    return Response(
        data,
        content_type="application/json",
        headers={"Cache-Control": f"{scope}, max-age=60"},
    )
