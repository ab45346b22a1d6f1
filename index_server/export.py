"""The read side of the index as static files, for any web server or CDN (no Python at serve time).

Layout under DEST (the same URLs as `wheelfarm serve`):
  simple/index.html, simple/index.json                 the project list, PEP 503 HTML and PEP 691 JSON
  simple/<project>/index.html, .../index.json          each project page (PEP 592 yanks, PEP 700 fields)
  .../index.html.gz, .../index.json.gz                 each page gzipped, for nginx's gzip_static
  files/<project>/<filename>                           the distributions (unless --files-url)
  files/<project>/<filename>.metadata                  each wheel's core metadata (PEP 658/714)
  .wheelfarm-names.map                                 every spelling of each project's name, for nginx
  .wheelfarm-export.json                               what was written, with sha256s (incremental runs)

Pages are rendered by the same functions as the live server's (`index_server.simple`), with links
relative to the page (`../../files/...`), so the export can be served under any host and prefix; with
`files_url` the file links point to where the files live and no file is copied: the live index
(which serves each wheel's `.metadata` beside it), or the bucket of an index kept without a database
(with `--database` the metadata is in the database, not beside the files). Every write goes to a temporary file that is renamed into place: a reader sees the old
page or the new one, never half of one. An incremental run rewrites only pages whose bytes changed
(and their `.gz` siblings with them), copies only files it has not copied before, and removes what
the catalog no longer holds. A bucket export has no `.gz` siblings: a CDN compresses by itself, and
a static bucket would serve them as downloads.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from builder.common.atomic import atomic_write_bytes, atomic_writer, fsync_dir
from index_server.catalog import Catalog, Project, file_key
from index_server.simple import (
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from index_server.storage import CHUNK, Storage

MANIFEST = ".wheelfarm-export.json"
GZ = ".gz"
NAMES_MAP = ".wheelfarm-names.map"
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class ExportError(Exception):
    """The destination cannot be written (the message names it)."""


@dataclass
class ExportReport:
    dest: str
    projects: int = 0
    files: int = 0
    pages_written: list[str] = field(default_factory=list)
    pages_unchanged: int = 0
    files_copied: list[str] = field(default_factory=list)
    files_kept: int = 0
    removed: list[str] = field(default_factory=list)
    names_map_written: bool = False  # nginx must reload to redirect the new projects' spellings

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": self.dest,
            "projects": self.projects,
            "files": self.files,
            "pages_written": self.pages_written,
            "pages_unchanged": self.pages_unchanged,
            "files_copied": self.files_copied,
            "files_kept": self.files_kept,
            "removed": self.removed,
            "names_map_written": self.names_map_written,
        }


def _renderer(base_url: str) -> Any:
    """What the page renderers read of the server's State: only `config.base_url`."""
    return SimpleNamespace(config=SimpleNamespace(base_url=base_url))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spelling_pattern(name: str) -> str:
    """A regex (PCRE and Python `re`, to be matched case-insensitively against the request path)
    for every other spelling of the normalized project `name` (PEP 503: any case, any run of
    `-`, `_`, `.` between its parts): `/simple/Foo_Bar/` and `/simple/foo.bar` match `foo-bar`,
    `/simple/foo-bar/` itself does not (so a stale map never redirects a page to itself)."""
    if not _NORMALIZED.fullmatch(name):
        raise ValueError(f"{name!r} is not a normalized project name")
    spelled = "[-_.]+".join(name.split("-"))
    return f"^/simple/(?!(?-i:{name})/?$){spelled}/?$"


def names_map(projects: list[Project]) -> bytes:
    """The entries of nginx's `map $uri $wheelfarm_project` (deploy/nginx/wheelfarm-export.conf):
    nginx cannot lowercase a path, so each project gets one case-insensitive regex for all of its
    spellings, and a request for any of them is redirected to the normalized page."""
    lines = [
        "# Written by `wheelfarm export`: every spelling of each project's name -> the name "
        "(PEP 503).",
        "# Included by deploy/nginx/wheelfarm-export.conf; reload nginx when it changes.",
    ]
    lines += [f'"~*{spelling_pattern(p.name)}" {p.name};' for p in projects]
    return ("\n".join(lines) + "\n").encode()


class _Dest:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.manifest: dict[str, str] = json.loads((root / MANIFEST).read_text())
        except FileNotFoundError:
            self.manifest = {}
        except (OSError, ValueError) as exc:
            raise ExportError(f"{root}: cannot read the export: {exc}") from None
        self.seen: set[str] = set()

    def write_if_changed(self, rel: str, body: bytes) -> bool:
        """Replace `rel` atomically when its bytes differ from the last export (or it is gone)."""
        self.seen.add(rel)
        digest = _sha256(body)
        path = self.root / rel
        if self.manifest.get(rel) == digest and path.is_file():
            return False
        atomic_write_bytes(path, body)
        self.manifest[rel] = digest
        return True

    def write_page(self, rel: str, body: bytes) -> bool:
        """A page and its gzipped sibling (`rel.gz`, what nginx's gzip_static sends to clients that
        accept gzip): both rewritten when the page changed or one of them is missing, else left."""
        gz_rel = rel + GZ
        self.seen.update((rel, gz_rel))
        digest = _sha256(body)
        path, gz_path = self.root / rel, self.root / gz_rel
        if self.manifest.get(rel) == digest and path.is_file() and gz_path.is_file():
            return False
        # mtime=0: the same page always compresses to the same bytes. The sibling goes first, so a
        # page on disk never has a .gz older than the last export's.
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        atomic_write_bytes(gz_path, packed)
        self.manifest[gz_rel] = _sha256(packed)
        atomic_write_bytes(path, body)
        self.manifest[rel] = digest
        return True

    def write_names_map(self, projects: list[Project]) -> bool:
        """nginx's redirects of other spellings of the project names (see names_map)."""
        return self.write_if_changed(NAMES_MAP, names_map(projects))

    def copy_once(self, rel: str, sha256: str, storage: Storage, key: str) -> bool:
        """Copy a stored file (immutable once published) unless this export already holds it."""
        self.seen.add(rel)
        path = self.root / rel
        if self.manifest.get(rel) == sha256 and path.is_file():
            return False
        digest = hashlib.sha256()
        with storage.open(key) as src, atomic_writer(path) as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha256:  # raised inside: the temporary file is dropped
                raise ExportError(f"{key}: stored bytes do not match the catalog's sha256")
        self.manifest[rel] = sha256
        return True

    def sweep(self, report: ExportReport) -> None:
        """Remove what earlier exports wrote and the catalog no longer holds; save the manifest."""
        for rel in sorted(set(self.manifest) - self.seen):
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()
            del self.manifest[rel]
            report.removed.append(rel)
            folder = (self.root / rel).parent
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        atomic_write_bytes(
            self.root / MANIFEST, json.dumps(self.manifest, indent=0, sort_keys=True).encode()
        )
        fsync_dir(self.root)


class _BucketDest(_Dest):
    """The export as objects under an S3 bucket prefix (index_server.storage_s3): each object is
    written whole by one PUT (S3 never shows half an object), with the Content-Type a static host or
    CDN serves it with. Content negotiation is the CDN's part (README: S3 + CDN)."""

    TYPES = {
        ".json": "application/vnd.pypi.simple.v1+json",
        ".html": "text/html; charset=utf-8",
        ".metadata": "text/plain; charset=utf-8",
    }

    def __init__(self, target: Any) -> None:
        self.target = target
        target.ensure_bucket()
        self.root = Path(target.bucket_url())
        try:
            self.manifest = json.loads(target.read_bytes(MANIFEST))
        except FileNotFoundError:
            self.manifest = {}
        except ValueError as exc:
            raise ExportError(f"{target.bucket_url()}: cannot read the export: {exc}") from None
        self.seen = set()

    def _type(self, rel: str) -> str:
        return next(
            (t for ext, t in self.TYPES.items() if rel.endswith(ext)), "application/octet-stream"
        )

    def write_if_changed(self, rel: str, body: bytes) -> bool:
        self.seen.add(rel)
        digest = _sha256(body)
        if self.manifest.get(rel) == digest:
            return False
        self.target.put_object_bytes(rel, body, self._type(rel))
        self.manifest[rel] = digest
        return True

    def write_page(self, rel: str, body: bytes) -> bool:
        return self.write_if_changed(rel, body)

    def write_names_map(self, projects: list[Project]) -> bool:
        return False  # a CDN maps spellings itself (README: S3 + CDN)

    def copy_once(self, rel: str, sha256: str, storage: Storage, key: str) -> bool:
        self.seen.add(rel)
        if self.manifest.get(rel) == sha256:
            return False
        with storage.open(key) as src:
            data = src.read()
        if _sha256(data) != sha256:
            raise ExportError(f"{key}: stored bytes do not match the catalog's sha256")
        self.target.put_object_bytes(rel, data, self._type(rel))
        self.manifest[rel] = sha256
        return True

    def sweep(self, report: ExportReport) -> None:
        for rel in sorted(set(self.manifest) - self.seen):
            self.target.delete(rel)
            del self.manifest[rel]
            report.removed.append(rel)
        body = json.dumps(self.manifest, indent=0, sort_keys=True).encode()
        self.target.put_object_bytes(MANIFEST, body, "application/json")


def export(
    storage: Storage,
    dest: Path | str,
    *,
    files_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    catalog: Catalog | None = None,
) -> ExportReport:
    """Write (or bring up to date) the static export of the index in `storage` under `dest`: a
    folder, or an s3://bucket/prefix URL."""
    if catalog is None:
        catalog = Catalog(storage)
        catalog.load()
    else:
        catalog.refresh()
    if str(dest).startswith("s3://"):
        from index_server.storage_s3 import S3Storage

        target: _Dest = _BucketDest(S3Storage.from_env(str(dest)))
    else:
        target = _Dest(Path(dest))
    report = ExportReport(str(dest))
    projects = catalog.projects()
    report.projects = len(projects)
    try:
        _export(catalog, target, report, projects, files_url, progress)
    except OSError as exc:
        raise ExportError(f"{dest}: {os.strerror(exc.errno or 0) or exc}: {exc}") from None
    return report


def _export(
    catalog: Catalog,
    target: _Dest,
    report: ExportReport,
    projects: list[Project],
    files_url: str | None,
    progress: Callable[[str], None] | None,
) -> None:
    def page(rel: str, body: bytes) -> None:
        if target.write_page(rel, body):
            report.pages_written.append(rel)
        else:
            report.pages_unchanged += 1

    # Files first, pages after: a page never links a file that is not there yet.
    for project in projects:
        if files_url is None:
            for f in project.files:
                report.files += 1
                rel = f"files/{project.name}/{f.filename}"
                key = file_key(project.name, f.filename)
                if target.copy_once(rel, f.sha256, catalog.storage, key):
                    report.files_copied.append(rel)
                else:
                    report.files_kept += 1
                if f.metadata_sha256:
                    meta = catalog.read_metadata(f)
                    if meta is None or _sha256(meta) != f.metadata_sha256:
                        raise ExportError(f"{key}.metadata: missing, or not what the catalog says")
                    target.write_if_changed(rel + ".metadata", meta)
        else:
            report.files += len(project.files)
        base = files_url.rstrip("/") if files_url else "../.."
        st = _renderer(base)
        page(f"simple/{project.name}/index.html", render_project_html(st, project))
        page(f"simple/{project.name}/index.json", render_project_json(st, project))
        if progress:
            progress(project.name)
    page("simple/index.html", render_index_html(_renderer(".."), projects))
    page("simple/index.json", render_index_json(projects))
    # After the pages: a spelling is redirected only to a page that is there.
    report.names_map_written = target.write_names_map(projects)
    target.sweep(report)
