"""Fetch an sdist (upstream URL, file: URL or local path), verify its sha256, cache it by hash.

The cache is cache_dir()/"sdists"/<sha256>/<filename>: a file there has been verified, so a second
fetch of the same hash is free. A download whose hash differs from the expected one is an error and
leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from builder.common.paths import cache_dir

CHUNK = 1 << 16


class FetchError(RuntimeError):
    """An sdist could not be fetched or does not have the expected hash; the message names it."""


def sdist_cache() -> Path:
    return cache_dir() / "sdists"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _local_path(source: str) -> Path | None:
    parts = urlsplit(source)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    if not parts.scheme:  # a plain path
        return Path(source)
    return None


def _filename(source: str) -> str:
    return unquote(urlsplit(source).path.rsplit("/", 1)[-1]) or "sdist"


def fetch_sdist(source: str | Path, sha256: str, filename: str | None = None) -> Path:
    """Return a cached, verified copy of the sdist at `source` whose sha256 must be `sha256`."""
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise FetchError(f"{source}: expected sha256 {sha256!r} is not a sha256 hex digest")
    source = str(source)
    name = filename or _filename(source)
    if "/" in name or name in ("", ".", ".."):
        raise FetchError(f"{source}: unusable file name {name!r}")
    dest = sdist_cache() / sha256 / name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            local = _local_path(source)
            if local is not None:
                try:
                    with open(local, "rb") as fh:
                        while chunk := fh.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                except OSError as exc:
                    raise FetchError(f"{source}: cannot read: {exc.strerror or exc}") from None
            else:
                _download(source, out, digest)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != sha256:
            raise FetchError(f"{source}: sha256 mismatch: expected {sha256}, got {got}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if dest.parent.exists() and not any(dest.parent.iterdir()):
            shutil.rmtree(dest.parent, ignore_errors=True)
        raise
    return dest


def _download(url: str, out, digest) -> None:
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as resp:
            if resp.status_code != 200:
                raise FetchError(f"{url}: HTTP {resp.status_code}")
            for chunk in resp.iter_bytes(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: download failed: {exc}") from None
