"""A small on-disk HTTP cache for GET requests: ETag/Last-Modified revalidation and Cache-Control max-age.

One entry per (URL, Accept) pair under cache_dir()/http: the body and a JSON sidecar with the validators
and freshness. A fresh entry answers without any request; a stale one is revalidated with
If-None-Match / If-Modified-Since and a 304 refreshes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class CachedResponse:
    url: str  # the final URL after redirects (relative links resolve against it)
    status: int
    content_type: str
    body: bytes
    etag: str | None
    last_modified: str | None
    stored_at: float
    max_age: float  # seconds the entry is fresh for; 0 means always revalidate

    def fresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.stored_at + self.max_age


def freshness(cache_control: str | None) -> tuple[bool, float]:
    """(storable, max_age) from a Cache-Control header."""
    cc = (cache_control or "").lower()
    if "no-store" in cc:
        return False, 0.0
    if "no-cache" in cc:
        return True, 0.0
    m = _MAX_AGE.search(cc)
    return True, float(m[1]) if m else 0.0


def _replace(path: Path, data: bytes) -> None:
    """Write beside `path` and rename over it: readers see the old or the new file. No fsync: this
    is a cache, and a torn entry after a crash fails its sha256 check and is fetched again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HttpCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, url: str, accept: str) -> tuple[Path, Path]:
        key = hashlib.sha256(f"{url}\n{accept}".encode()).hexdigest()
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.body"

    def get(self, url: str, accept: str) -> CachedResponse | None:
        meta_path, body_path = self._paths(url, accept)
        try:
            meta = json.loads(meta_path.read_text())
            body = body_path.read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
            return None  # torn or tampered entry: refetch
        return CachedResponse(
            url=meta["url"],
            status=meta["status"],
            content_type=meta["content_type"],
            body=body,
            etag=meta.get("etag"),
            last_modified=meta.get("last_modified"),
            stored_at=meta["stored_at"],
            max_age=meta["max_age"],
        )

    def put(self, url: str, accept: str, resp: CachedResponse) -> None:
        meta_path, body_path = self._paths(url, accept)
        # Body first, then the sidecar that names its hash: a reader never pairs a new body with old
        # validators (and a mismatch is detected by the hash).
        _replace(body_path, resp.body)
        meta = {
            "url": resp.url,
            "status": resp.status,
            "content_type": resp.content_type,
            "etag": resp.etag,
            "last_modified": resp.last_modified,
            "stored_at": resp.stored_at,
            "max_age": resp.max_age,
            "sha256": hashlib.sha256(resp.body).hexdigest(),
        }
        _replace(meta_path, json.dumps(meta).encode())
