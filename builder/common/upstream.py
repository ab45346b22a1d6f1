"""A client for any package index: PEP 691 JSON, with a PEP 503 HTML fallback.

It asks PyPI by default, any index URL on request, or pip's own configured index (`--index-url pip`:
PIP_INDEX_URL, then pip's configuration). Requests run concurrently with a bound, time out, are retried
with exponential backoff on 5xx and network errors, and go through an on-disk HTTP cache (ETag /
If-None-Match, Cache-Control max-age), so a second plan a minute later makes next to no requests.
The same client reads wheelfarm's own index.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urldefrag, urljoin

import httpx
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from builder.common.fetch import fetch_verified
from builder.common.http import Http, UpstreamError, redact
from builder.common.httpcache import CachedResponse, HttpCache, freshness
from builder.common.paths import cache_dir

PYPI_SIMPLE = "https://pypi.org/simple/"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


class ProjectNotFound(UpstreamError):
    """The index has no such project (404)."""


@dataclass(frozen=True)
class DistFile:
    """One file of a project page, as PEP 691 describes it."""

    filename: str
    url: str  # absolute, without the #hash fragment
    hashes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    core_metadata: bool = False
    core_metadata_hashes: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip")) and self._sdist_parts is not None

    @property
    def version(self) -> Version | None:
        """The version from the file name, or None for a name packaging cannot parse."""
        if self.is_wheel:
            parsed = self._wheel_parts
            return parsed[1] if parsed else None
        sdist = self._sdist_parts
        return sdist[1] if sdist else None

    @property
    def tags(self) -> frozenset[Tag]:
        parsed = self._wheel_parts
        return parsed[3] if parsed else frozenset()

    # Parsed once per file: the planner asks for tags and versions many times per file.
    @functools.cached_property
    def _wheel_parts(self) -> tuple[Any, Version, Any, frozenset[Tag]] | None:
        try:
            return parse_wheel_filename(self.filename)
        except (InvalidWheelFilename, InvalidVersion):
            return None

    @functools.cached_property
    def _sdist_parts(self) -> tuple[Any, Version] | None:
        try:
            return parse_sdist_filename(self.filename)
        except (InvalidSdistFilename, InvalidVersion):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": self.url,
            "hashes": dict(self.hashes),
            "requires-python": self.requires_python,
            "yanked": self.yanked_reason if self.yanked and self.yanked_reason else self.yanked,
            "size": self.size,
            "upload-time": self.upload_time,
        }


@dataclass(frozen=True)
class ProjectPage:
    name: str
    url: str
    files: tuple[DistFile, ...]
    versions: tuple[
        str, ...
    ]  # PEP 700 `versions` when the index gives it, else from the file names

    def releases(self) -> dict[Version, list[DistFile]]:
        """Files grouped by the version in their file name, newest version first (do not mutate)."""
        return self._releases

    @functools.cached_property
    def _releases(self) -> dict[Version, list[DistFile]]:
        out: dict[Version, list[DistFile]] = {}
        for version in self.versions:
            try:
                out.setdefault(Version(version), [])
            except InvalidVersion:
                continue
        for f in self.files:
            if (v := f.version) is not None:
                out.setdefault(v, []).append(f)
        return dict(sorted(out.items(), reverse=True))


# ---- parsing -------------------------------------------------------------------------------------


def _hash_fragment(url: str) -> tuple[str, dict[str, str]]:
    clean, frag = urldefrag(url)
    name, sep, value = frag.partition("=")
    return clean, ({name: value} if sep and name and value else {})


def _meta_flag(value: Any) -> tuple[bool, dict[str, str]]:
    if isinstance(value, dict):
        return True, {str(k): str(v) for k, v in value.items()}
    return bool(value), {}


def parse_json_page(name: str, page_url: str, body: bytes) -> ProjectPage:
    """Parse a PEP 691 project page; raise UpstreamError for anything that is not one."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise UpstreamError(page_url, f"garbage instead of PEP 691 JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise UpstreamError(page_url, "not a PEP 691 project page (no `files` list)")
    api = str((doc.get("meta") or {}).get("api-version", "1.0"))
    if api.split(".")[0] != "1":
        raise UpstreamError(page_url, f"unsupported simple API version {api}")
    files = []
    for entry in doc["files"]:
        if not isinstance(entry, dict) or not entry.get("filename") or not entry.get("url"):
            raise UpstreamError(page_url, f"malformed file entry: {str(entry)[:80]}")
        url, frag_hashes = _hash_fragment(urljoin(page_url, str(entry["url"])))
        yanked = entry.get("yanked", False)
        meta, meta_hashes = _meta_flag(entry.get("core-metadata", entry.get("dist-info-metadata")))
        hashes = entry.get("hashes") if isinstance(entry.get("hashes"), dict) else frag_hashes
        size = entry.get("size")
        files.append(
            DistFile(
                filename=str(entry["filename"]),
                url=url,
                hashes=MappingProxyType({str(k): str(v) for k, v in hashes.items()}),
                requires_python=entry.get("requires-python") or None,
                yanked=bool(yanked),
                yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
                size=size if isinstance(size, int) else None,
                upload_time=entry.get("upload-time"),
                core_metadata=meta,
                core_metadata_hashes=MappingProxyType(meta_hashes),
            )
        )
    versions = doc.get("versions")
    if not isinstance(versions, list):
        versions = _versions_of(files)
    return ProjectPage(
        str(doc.get("name") or name), page_url, tuple(files), tuple(map(str, versions))
    )


def _versions_of(files: Iterable[DistFile]) -> list[str]:
    return [str(v) for v in sorted({f.version for f in files if f.version is not None})]


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._current, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def parse_html_page(name: str, page_url: str, body: bytes) -> ProjectPage:
    """Parse a PEP 503 project page (anchors with data-requires-python, data-yanked, ...)."""
    parser = _AnchorParser()
    try:
        parser.feed(body.decode("utf-8"))
        parser.close()
    except UnicodeDecodeError as exc:
        raise UpstreamError(page_url, f"garbage instead of a PEP 503 page ({exc.reason})") from None
    base = urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, hashes = _hash_fragment(urljoin(base, href))
        filename = text or url.rsplit("/", 1)[-1]
        yanked = "data-yanked" in attrs
        meta_attr = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        meta_hashes = dict([meta_attr.split("=", 1)]) if meta_attr and "=" in meta_attr else {}
        files.append(
            DistFile(
                filename=filename,
                url=url,
                hashes=MappingProxyType(hashes),
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                yanked_reason=(attrs.get("data-yanked") or None) if yanked else None,
                core_metadata=meta_attr is not None and meta_attr != "false",
                core_metadata_hashes=MappingProxyType(meta_hashes),
            )
        )
    return ProjectPage(name, page_url, tuple(files), tuple(_versions_of(files)))


# ---- index URLs ----------------------------------------------------------------------------------


def pip_index_url() -> str:
    """The index pip would use: $PIP_INDEX_URL, else pip's configuration, else PyPI."""
    if env := os.environ.get("PIP_INDEX_URL"):
        return env
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return PYPI_SIMPLE
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url"):
            found[key.split(".")[0]] = value.strip().strip("'\"")
    return found.get("install") or found.get("global") or PYPI_SIMPLE


def resolve_index_url(value: str | None) -> str:
    """None or "pypi" -> PyPI; "pip" -> pip's configured index; anything else is a URL."""
    if value is None or value.lower() == "pypi":
        return PYPI_SIMPLE
    if value.lower() == "pip":
        return pip_index_url()
    if not value.startswith(("http://", "https://")):
        raise UpstreamError(value, "an index URL must start with http:// or https://")
    return value if value.endswith("/") else value + "/"


# ---- the client ----------------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = (
        0  # requests that reached the network (retries included), kept by the Http layer
    )
    fresh_hits: int = 0  # answered from the cache without a request
    not_modified: int = 0  # 304 answers to a revalidation

    def to_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "fresh_hits": self.fresh_hits,
            "not_modified": self.not_modified,
        }


class IndexClient:
    """Reads project pages of one index. Thread-safe; use as a context manager or call close()."""

    def __init__(
        self,
        index_url: str | None = None,
        *,
        cache: HttpCache | bool | None = True,
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_workers: int = 16,
        refresh: bool = False,
    ) -> None:
        self.index_url = resolve_index_url(index_url)
        if cache is True:
            cache = HttpCache(cache_dir() / "http")
        self.cache: HttpCache | None = cache or None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_workers = max_workers
        self.refresh = refresh  # revalidate even fresh cache entries
        self._stats = Stats()
        self._lock = threading.Lock()
        self._http = Http(
            timeout=timeout, retries=retries, backoff=backoff, max_connections=max_workers
        )

    @property
    def stats(self) -> Stats:
        self._stats.requests = self._http.requests
        return self._stats

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def project_url(self, name: str) -> str:
        return urljoin(self.index_url, f"{canonicalize_name(name)}/")

    def project(self, name: str) -> ProjectPage:
        """The project's page; raise ProjectNotFound (404) or UpstreamError (anything else wrong)."""
        return self.project_entry(name)[0]

    def project_entry(
        self, name: str, *, max_stale: float | None = None
    ) -> tuple[ProjectPage, CachedResponse]:
        """The project's page and the response it came from (its stored time and max-age).

        `max_stale` bounds how old a cached page may be before it is revalidated, whatever max-age
        the index gave (an overlay serving the page on must not hand out hour-old pages)."""
        url = self.project_url(name)
        resp = self.get(url, ACCEPT, max_stale=max_stale)
        if resp.status == 404:
            raise ProjectNotFound(redact(url), f"no project {name!r} on this index (404)")
        return self._parse(name, resp), resp

    def last_good(self, name: str) -> tuple[ProjectPage, CachedResponse] | None:
        """The project's page as last stored in the cache, however old (no request): what to serve,
        marked stale, while the index cannot answer. None when nothing usable is stored."""
        if self.cache is None:
            return None
        cached = self.cache.get(self.project_url(name), ACCEPT)
        if cached is None or cached.status != 200:
            return None
        try:
            return self._parse(name, cached), cached
        except UpstreamError:
            return None

    def _parse(self, name: str, resp: CachedResponse) -> ProjectPage:
        shown = redact(resp.url)
        if resp.status != 200:
            raise UpstreamError(shown, f"HTTP {resp.status}")
        ctype = resp.content_type.split(";")[0].strip().lower()
        if ctype == JSON_TYPE or ctype == "application/json":
            return parse_json_page(name, resp.url, resp.body)
        if ctype in HTML_TYPES:
            return parse_html_page(name, resp.url, resp.body)
        raise UpstreamError(shown, f"unexpected content type {ctype or '(none)'!r}")

    def projects(
        self, names: Iterable[str], progress: Callable[[str], None] | None = None
    ) -> dict[str, ProjectPage | UpstreamError]:
        """Many project pages at once (bounded concurrency); failures are returned, not raised."""
        unique = list(dict.fromkeys(canonicalize_name(n) for n in names))

        def one(name: str) -> ProjectPage | UpstreamError:
            try:
                return self.project(name)
            except UpstreamError as exc:
                return exc
            finally:
                if progress:
                    progress(name)

        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return dict(zip(unique, pool.map(one, unique), strict=True))

    def get(self, url: str, accept: str, *, max_stale: float | None = None) -> CachedResponse:
        """GET through the cache; 2xx, 304 and 404 are answers, 5xx/network errors are retried.
        `max_stale`: a cached entry older than this many seconds is revalidated even if fresh."""
        cached = self.cache.get(url, accept) if self.cache else None
        young = max_stale is None or (
            cached is not None and time.time() - cached.stored_at < max_stale
        )
        if cached and not self.refresh and cached.fresh() and young:
            with self._lock:
                self._stats.fresh_hits += 1
            return cached
        headers = {"Accept": accept}
        if cached and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        response = self._send(url, headers)
        storable, max_age = freshness(response.headers.get("cache-control"))
        if response.status_code == 304 and cached:
            with self._lock:
                self._stats.not_modified += 1
            renewed = dataclasses.replace(cached, stored_at=time.time(), max_age=max_age)
            # With max-age=0 the stored time does not matter: skip rewriting an identical entry.
            if self.cache and storable and (max_age or cached.max_age):
                self.cache.put(url, accept, renewed)
            return renewed
        result = CachedResponse(
            url=str(response.url),
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            stored_at=time.time(),
            max_age=max_age,
        )
        if self.cache and storable and response.status_code == 200:
            self.cache.put(url, accept, result)
        return result

    def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        response = self._http.get(url, headers)
        if response.status_code >= 400 and response.status_code != 404:
            raise UpstreamError(
                redact(url), f"HTTP {response.status_code} {response.reason_phrase}".strip()
            )
        return response

    def download(self, file: DistFile, cache: str = "files") -> Path:
        """The file, downloaded once into cache_dir()/<cache>/<sha256>/ and verified by its sha256
        (an index that gives no sha256: downloaded again each time, under `unhashed/`)."""
        return fetch_verified(
            file.url, file.sha256 or None, cache=cache, filename=file.filename, http=self._http
        )


SHADOWING_POLICY = "public-name-shadowing"


def shadowing_refusal(page: ProjectPage | None, version: Version, index_url: str) -> str | None:
    """Why publishing `version` of a project next to the index at `index_url` would shadow a public
    project, or None when it may be published. `page` is the project's page there (None: 404).

    The rule (a dependency-confusion guard, the same for `wheelfarm publish` and the index's
    uploads): a project the upstream index has may be published only in versions the upstream has
    (a rebuild of a public release); a project it lacks is private to our index.
    """
    if page is None or version in page.releases():
        return None
    return (
        f"{canonicalize_name(page.name)} is a public project on {redact(index_url)}, which has no "
        f"version {version}: a version of a public name that only this index has would shadow it "
        f"for installers that use both (policy {SHADOWING_POLICY}; publish private projects "
        "under names the upstream index does not have)"
    )


def project_or_none(client: IndexClient, name: str) -> ProjectPage | None:
    """The project's page on the client's index, None when it has no such project (404);
    UpstreamError when the index cannot answer."""
    try:
        return client.project(name)
    except ProjectNotFound:
        return None


def get_project(name: str, index_url: str | None = None, **client_options: Any) -> ProjectPage:
    """One project's page from an index (PyPI by default): the small entry point other modules reuse,
    e.g. `wheelfarm check --index URL PROJECT`. Raises ProjectNotFound / UpstreamError."""
    with IndexClient(index_url, **client_options) as client:
        return client.project(name)
