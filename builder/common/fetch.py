"""Files fetched by sha256: sdists, upstream wheels, native library sources, in one cache layout.

`fetch_verified(source, sha256, cache=KIND)` returns cache_dir()/KIND/<sha256>/<filename>: a file there
has been verified, so a second fetch of the same hash is free. The source is an http(s) URL (through
the one network layer, builder.common.http: retries, atomic, hashed while streaming), a file: URL or a
local path. A file whose hash differs from the expected one is an error and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from builder.common.atomic import atomic_writer
from builder.common.http import CHUNK, HashMismatch, Http, UpstreamError, sha256_file
from builder.common.paths import cache_dir

__all__ = ["FetchError", "fetch_sdist", "fetch_verified", "sha256_file"]

SHA256 = re.compile(r"[0-9a-f]{64}")


class FetchError(UpstreamError):
    """A file could not be fetched or does not have the expected hash; the message names it."""


def _local_path(source: str) -> Path | None:
    parts = urlsplit(source)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    if not parts.scheme:  # a plain path
        return Path(source)
    return None


def _filename(source: str) -> str:
    return unquote(urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1]) or "download"


def fetch_verified(
    source: str | Path,
    sha256: str | None,
    *,
    cache: str,
    filename: str | None = None,
    http: Http | None = None,
) -> Path:
    """A cached, verified copy of `source` whose sha256 must be `sha256` (None: not verifiable,
    fetched again each time into cache_dir()/<cache>/unhashed/)."""
    source = str(source)
    if sha256 is not None:
        sha256 = sha256.lower()
        if not SHA256.fullmatch(sha256):
            raise FetchError(source, f"expected sha256 {sha256!r} is not a sha256 hex digest")
    name = filename or _filename(source)
    if "/" in name or name in ("", ".", ".."):
        raise FetchError(source, f"unusable file name {name!r}")
    folder = cache_dir() / cache / (sha256 or "unhashed")
    dest = folder / name
    if sha256 and dest.is_file():
        return dest
    try:
        local = _local_path(source)
        if local is not None:
            _copy_verified(local, dest, sha256, source)
        elif http is not None:
            http.download(source, dest, sha256)
        else:
            with Http(timeout=60.0) as own:
                own.download(source, dest, sha256)
    except FetchError:
        raise
    except HashMismatch as exc:
        raise FetchError(exc.url, exc.problem) from None
    except UpstreamError as exc:
        raise FetchError(exc.url, f"download failed: {exc.problem}") from None
    finally:
        if folder.exists() and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    return dest


def fetch_sdist(source: str | Path, sha256: str, filename: str | None = None) -> Path:
    """A cached, verified copy of the sdist at `source` (cache_dir()/sdists/<sha256>/<filename>)."""
    return fetch_verified(source, sha256, cache="sdists", filename=filename)


def _copy_verified(local: Path, dest: Path, sha256: str | None, source: str) -> None:
    digest = hashlib.sha256()
    try:
        with open(local, "rb") as fh, atomic_writer(dest) as out:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if sha256 and digest.hexdigest() != sha256:
                raise FetchError(
                    source, f"sha256 mismatch: expected {sha256}, got {digest.hexdigest()}"
                )
    except OSError as exc:
        raise FetchError(source, f"cannot read: {exc.strerror or exc}") from None
