"""The legacy upload API that `twine upload --repository-url http://HOST/legacy/` speaks.

A multipart/form-data POST with `:action=file_upload`, the file in field `content`, and optional
`sha256_digest`, `md5_digest`, `blake2_256_digest`, `name`, `version`. Every check runs before
anything is written; the file is then stored atomically and published by writing its record.

An existing filename is answered 409 Conflict whatever its content (files are never overwritten);
twine's `--skip-existing` treats a 409 as "already exists" and skips the file (twine/commands/upload.py,
skip_upload). The message says whether the stored file is identical.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import shutil
import tempfile
import threading
from pathlib import Path

from flask import Blueprint, Response, g, request
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from index_server import distfile
from index_server.auth import TokenRefused, require_upload_token
from index_server.errors import BODY_READ, refuse_unread, text_error, unauthorized
from index_server.shadowing import SHADOWING_POLICY, UpstreamError
from index_server.state import get_state
from index_server.storage import AlreadyExists

log = logging.getLogger(__name__)
bp = Blueprint("upload", __name__)


class UploadError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The digests twine (and others) may send, checked against the file when sent.
DIGEST_FIELDS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2_256"}


def _hasher(algorithm: str):
    return hashlib.blake2b(digest_size=32) if algorithm == "blake2_256" else hashlib.new(algorithm)


def _hash_upload(fh) -> tuple[dict[str, str], int]:
    """The file's sha256 and every digest the client sent, in one pass; (hex digests, size)."""
    algorithms = {"sha256"} | {
        algorithm for field, algorithm in DIGEST_FIELDS.items() if request.form.get(field)
    }
    hashers = {a: _hasher(a) for a in sorted(algorithms)}
    size = 0
    fh.seek(0)
    while chunk := fh.read(1 << 20):
        size += len(chunk)
        for h in hashers.values():
            h.update(chunk)
    fh.seek(0)
    return {a: h.hexdigest() for a, h in hashers.items()}, size


def _check_digests(digests: dict[str, str]) -> None:
    for field, algorithm in DIGEST_FIELDS.items():
        sent = request.form.get(field, "").strip().lower()
        if sent and not hmac.compare_digest(digests[algorithm], sent):
            raise UploadError(
                400, f"{field} does not match the uploaded file ({digests[algorithm]})"
            )


def _require_upload_token() -> str:
    try:
        token = require_upload_token(
            get_state().tokens,
            request.headers.get("Authorization"),
            missing="uploads need a token: HTTP Basic with user __token__",
            verb="upload",
        )
    except TokenRefused as exc:
        raise UploadError(exc.code, exc.message) from None
    return token.name


def handle_upload() -> Response:
    g.token_name = _require_upload_token()
    if request.mimetype != "multipart/form-data":
        raise UploadError(400, f"expected multipart/form-data, got {request.mimetype or 'no body'}")
    limit = get_state().config.max_upload
    if (request.content_length or 0) > limit:  # refused on the header, before any byte is read
        raise UploadError(413, f"upload too large: the limit is {limit} bytes")
    request.environ[BODY_READ] = True
    form, files = request.form, request.files  # parsing may still raise 413 (chunked bodies)
    if not form and not files:
        raise UploadError(400, "malformed multipart/form-data body: no fields could be read")
    action = form.get(":action")
    if action != "file_upload":
        raise UploadError(400, f"unsupported :action {action!r}; only file_upload is supported")
    upload = files.get("content")
    if upload is None or not upload.filename:
        raise UploadError(400, "no file in multipart field 'content'")
    name = distfile.parse_filename(upload.filename)
    if form.get("name") and canonicalize_name(form["name"]) != name.project:
        raise UploadError(
            400, f"form field name={form['name']!r} does not match the filename {name.given!r}"
        )
    if form.get("version"):
        try:
            if Version(form["version"]) != name.version:
                raise InvalidVersion
        except InvalidVersion:
            raise UploadError(
                400,
                f"form field version={form['version']!r} does not match the filename {name.given!r}",
            ) from None
    private = _require_no_shadowing(name)
    fh = upload.stream
    digests, size = _hash_upload(fh)
    sha256 = digests["sha256"]
    if size == 0:
        raise UploadError(400, f"{name.given}: the file is empty")
    if size > get_state().config.max_upload:
        raise UploadError(
            413, f"upload too large: the limit is {get_state().config.max_upload} bytes"
        )
    _check_digests(digests)
    catalog = get_state().catalog
    _refuse_existing(name, sha256, known=True)
    info = distfile.inspect(fh, name.filename)
    if get_state().config.strict and name.filename.endswith(".whl"):
        _require_checker_pass(fh, name.filename)
    try:
        catalog.add(info, fh, sha256, size)
    except AlreadyExists:
        _refuse_existing(name, sha256)  # another upload of the same name won the race
        raise
    if private:
        get_state().upstream.mark_private(name.project)
    log.info("stored %s (%d bytes, sha256 %s, token %s)", name.filename, size, sha256, g.token_name)
    return Response(f"OK: stored {name.filename}\n", mimetype="text/plain")


def _require_no_shadowing(name: distfile.DistName) -> bool:
    """403 when the upload would shadow a public project (index_server/shadowing.py); 503 when
    the upstream cannot tell. True when the upstream lacks the project (a private one)."""
    upstream = get_state().upstream
    try:
        why, private = upstream.refusal(name.project, name.version)
    except UpstreamError as exc:
        raise UploadError(
            503,
            f"cannot check {name.given} against the upstream index (policy {SHADOWING_POLICY}): "
            f"{exc}; try again, or run the index with --upstream none if it is air-gapped",
        ) from None
    if why:
        raise UploadError(403, f"{name.given} refused: {why}")
    return private


# The checker runs auditwheel, which changes the working directory of the whole process: one at a time.
_checker_lock = threading.Lock()


def _require_checker_pass(fh, filename: str) -> None:
    """--strict: a wheel the checker rejects is refused with 422 and its findings."""
    from builder.check import WheelReadError, check_wheel

    with tempfile.TemporaryDirectory(prefix="wheelfarm-check-") as tmp:
        path = Path(tmp) / filename
        fh.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        fh.seek(0)
        try:
            with _checker_lock:
                report = check_wheel(path)
        except WheelReadError as exc:
            raise UploadError(422, f"the wheel checker cannot read {filename}: {exc}") from None
    errors = [f for f in report.findings if f.severity == "error"]
    if errors:
        lines = [f"{f.rule} {f.path or '(wheel)'}: {f.message}" for f in errors]
        raise UploadError(
            422,
            f"the wheel checker rejects {filename}: "
            + "; ".join(lines[:1])
            + "\n"
            + "\n".join(lines),
        )


def _refuse_existing(name: distfile.DistName, sha256: str, *, known: bool = False) -> None:
    """409 when the upload duplicates a stored file. known=True (before storing): what the
    catalog's records say (catalog.known_conflict); else the storage is asked too."""
    catalog = get_state().catalog
    existing = catalog.known_conflict(name) if known else catalog.conflict(name)
    if existing is None:
        return
    if existing.filename == name.given:
        same = ""
    elif existing.filename == name.filename:
        same = f" (stored as {existing.filename})"
    else:
        same = (
            f": the stored {existing.filename} is the same distribution"
            " (normalized name, version and tags)"
        )
    if existing.sha256 == sha256:
        raise UploadError(409, f"File already exists: {name.given}{same} (identical content)")
    raise UploadError(
        409,
        f"File already exists: {name.given}{same} with different content (stored sha256 "
        f"{existing.sha256}); files are never overwritten, upload a new version instead",
    )


@bp.post("/legacy/", strict_slashes=False)
def upload() -> Response:
    try:
        return handle_upload()
    except UploadError as exc:
        log.warning("refused upload (%d): %s", exc.code, exc.message)
        return refuse_unread(
            unauthorized(exc.message) if exc.code == 401 else text_error(exc.code, exc.message)
        )
    except distfile.InvalidDistribution as exc:
        log.warning("refused upload (400): %s", exc)
        return text_error(400, str(exc))
