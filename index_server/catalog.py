"""What the index holds: projects, their files, each file's metadata digest and yank state.

Storage layout (keys of index_server.storage):
  files/<project>/<filename>            the distribution itself (written once, never overwritten)
  files/<project>/<filename>.metadata   a wheel's METADATA (PEP 658)
  records/<project>/<filename>.json     the file's record; its presence publishes the file
  generation                            how other processes notice a change: the change journal
                                        (index_server/changes.py) where the store can append, else
                                        a stamp rewritten after every change

The catalog is an in-memory copy of the records, loaded at start. Each request calls refresh(), which
costs one stat of `generation`; when another process (a gunicorn worker, `wheelfarm yank`) changed
something, the journal names the records to re-read (without a journal: the projects whose records
folder changed are re-read). Pages never scan storage.

Durability: an upload's file and .metadata are fsynced (with their folder) before its record is
written; the record and the journal are not, since both can be derived again: a start after a power
cut re-records a stored file whose record is missing or torn (`load`, `_reconcile`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from index_server import distfile
from index_server.changes import FARM, RESCAN, ChangeJournal
from index_server.storage import AlreadyExists, Storage, StorageError, StorageFull

log = logging.getLogger(__name__)

GENERATION = "generation"
RACY_NS = 2_000_000_000


def file_key(project: str, filename: str) -> str:
    return f"files/{project}/{filename}"


def _project_lock(project: str) -> str:
    return f"project-{project}"


def record_key(project: str, filename: str) -> str:
    return f"records/{project}/{filename}.json"


@dataclass(frozen=True)
class FileRecord:
    project: NormalizedName
    filename: str
    version: str
    sha256: str
    size: int
    upload_time: str  # ISO 8601, UTC, "2026-01-02T03:04:05.123456Z"
    requires_python: str | None = None
    metadata_sha256: str | None = None  # set when <file>.metadata is served (wheels)
    yanked: str | None = None  # None: not yanked; a string (maybe empty): the yank reason
    summary: str | None = None

    @property
    def kind(self) -> str:
        return "wheel" if self.filename.endswith(".whl") else "sdist"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FileRecord:
        raw = json.loads(data)
        return cls(**{k: raw.get(k) for k in cls.__dataclass_fields__})


@functools.lru_cache(maxsize=1 << 16)
def _version(text: str) -> Version:
    return Version(text)


def file_order(f: FileRecord) -> tuple[Version, str]:
    """How a project's files are sorted: by version, then filename."""
    return _version(f.version), f.filename


@dataclass
class Project:
    name: NormalizedName
    files: tuple[FileRecord, ...]  # sorted by file_order
    stamp: int = 0  # the records folder's mtime when read; 0: re-read it on a rescan
    # Rendered pages keyed by representation; replaced along with the Project when it changes.
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def versions(self) -> list[str]:
        seen: dict[str, Version] = {}
        for f in self.files:
            seen.setdefault(f.version, _version(f.version))
        return sorted(seen, key=seen.__getitem__)

    def get(self, filename: str) -> FileRecord | None:
        for f in self.files:
            if f.filename == filename:
                return f
        return None


def selected_files(current: Project | None, name: str, selector: str) -> list[FileRecord]:
    """The files a yank or unyank names: one file by its name, or every file of a version.
    LookupError when the project or the selector matches nothing."""
    if current is None:
        raise LookupError(f"no project {name!r} in the index")
    matches = [f for f in current.files if f.filename == selector]
    if not matches:
        try:
            wanted = Version(selector)
        except ValueError:
            wanted = None
        matches = [f for f in current.files if wanted is not None and Version(f.version) == wanted]
    if not matches:
        raise LookupError(f"project {name!r} has no file or version {selector!r}")
    return matches


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Catalog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.RLock()
        self._projects: dict[str, Project] = {}
        self._generation: object = None
        self._journal = ChangeJournal(storage, GENERATION) if storage.can_append else None
        # Bumped on every in-memory change; renderers of the project list cache by it.
        self.version = 0
        # Bumped when the farm's data (index_server/farm.py) may have changed.
        self.farm_generation = 0

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Read every record; repair what an interrupted upload left behind. Call once at start."""
        with self._lock:
            self.storage.sweep_partials()
            if self._journal is not None:
                self._journal.ensure()
                self._journal.read()  # from here on, what others change is read from the journal
            self._reconcile()
            self._generation = self._generation_token()
            self._projects = {}
            for name in self.storage.list("records"):
                project = self._read_project(name, repair=True)
                if project.files:
                    self._projects[name] = project
            self.version += 1
            self.farm_generation += 1

    def _reconcile(self) -> None:
        """Give every stored file a record, and drop records whose file is gone.

        A file is stored before its record, so a process killed in between leaves a complete file
        without a record; it is published now rather than left as an orphan that blocks re-uploads.
        """
        repaired = False
        for project in self.storage.list("files"):
            names = set(self.storage.list(f"files/{project}"))
            recorded = {n.removesuffix(".json") for n in self.storage.list(f"records/{project}")}
            for filename in sorted(names - recorded):
                if filename.endswith(".metadata"):
                    continue
                try:
                    self._record_existing(NormalizedName(project), filename)
                    repaired = True
                except (distfile.InvalidDistribution, OSError, StorageError) as exc:
                    log.warning("ignoring stored file %s/%s: %s", project, filename, exc)
            for filename in sorted(recorded - names):
                self.storage.delete(record_key(project, filename))
                repaired = True
        if repaired:
            self._announce(RESCAN)  # processes already running see the repair too

    def _record_existing(self, project: NormalizedName, filename: str) -> None:
        with self.storage.open(file_key(project, filename)) as fh:
            info = distfile.inspect(fh, filename)
            sha256, size = distfile.hash_file(fh)
        # Recorded under the name it is stored as (files stored before names were canonical).
        info = replace(info, name=replace(info.name, filename=filename))
        st = self.storage.stat(file_key(project, filename))
        when = datetime.fromtimestamp((st.mtime_ns if st else 0) / 1e9, UTC)
        record = self._make_record(info, sha256, size, when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self._store_metadata(record, info)
        self.storage.put_bytes(record_key(project, filename), record.to_json())

    def _read_project(self, name: str, *, repair: bool = False) -> Project:
        """The project as its records say. With repair (at start), a record that cannot be parsed
        (written without fsync and cut by a power loss) is made again from its stored file."""
        st = self.storage.stat(f"records/{name}")
        files = []
        for entry in self.storage.list(f"records/{name}"):
            if not entry.endswith(".json"):
                continue
            key = f"records/{name}/{entry}"
            try:
                files.append(FileRecord.from_json(self.storage.read_bytes(key)))
            except FileNotFoundError:
                continue
            except (ValueError, TypeError) as exc:
                if not repair:
                    raise
                filename = entry.removesuffix(".json")
                log.warning("record %s is damaged (%s): making it again from the file", key, exc)
                self.storage.delete(key)
                try:
                    self._record_existing(NormalizedName(name), filename)
                    files.append(FileRecord.from_json(self.storage.read_bytes(key)))
                except (distfile.InvalidDistribution, OSError, StorageError) as exc2:
                    log.warning("ignoring stored file %s/%s: %s", name, filename, exc2)
        files.sort(key=file_order)
        return Project(NormalizedName(name), tuple(files), st.mtime_ns if st else 0)

    def _generation_token(self) -> object:
        """What identifies the current generation, as cheaply as can be trusted.

        File times have a coarse clock (a few ms), so two changes in one tick can share an mtime:
        while the stamp is that recent, the file's content (a fresh uuid per change) decides.
        """
        st = self.storage.stat(GENERATION)
        if st is None:
            return None
        if time.time_ns() - st.mtime_ns < RACY_NS:
            try:
                return self.storage.read_bytes(GENERATION)
            except FileNotFoundError:
                return None
        return st

    def refresh(self) -> None:
        """Pick up changes made by other processes; one stat when nothing changed."""
        if self._journal is not None:
            if self._journal.unchanged():
                return
            with self._lock:
                entries = self._journal.read()
                if entries is None or RESCAN in entries:
                    self._rescan()
                elif entries:
                    self._apply(entries)
            return
        current = self._generation_token()
        if current == self._generation:
            return
        with self._lock:
            if current == self._generation:
                return
            self._generation = current
            self._rescan()

    def _rescan(self) -> None:
        """Re-read every project whose records folder changed (or may have: a racy stamp)."""
        names = set(self.storage.list("records"))
        changed = False
        now = time.time_ns()
        for name in names:
            st = self.storage.stat(f"records/{name}")
            old = self._projects.get(name)
            if (
                old is None
                or st is None
                or st.mtime_ns != old.stamp
                or now - st.mtime_ns < RACY_NS  # same tick as a change we may not have seen
            ):
                project = self._read_project(name)
                if project.files:
                    self._projects[name] = project
                else:
                    self._projects.pop(name, None)
                changed = True
        for gone in set(self._projects) - names:
            del self._projects[gone]
            changed = True
        if changed:
            self.version += 1
        self.farm_generation += 1

    def _apply(self, entries: list[str]) -> None:
        """Bring the projects the journal names up to date: read just the records it names."""
        touched: dict[str, dict[str, FileRecord | None]] = {}
        for entry in entries:
            if entry == FARM:
                self.farm_generation += 1
                continue
            project, sep, filename = entry.partition("/")
            if not sep or distfile.project_name(project) != project:
                self._rescan()  # not a line this version wrote: trust nothing
                return
            touched.setdefault(project, {})[filename] = None
        for project, changes in touched.items():
            for filename in changes:
                try:
                    data = self.storage.read_bytes(record_key(project, filename))
                except FileNotFoundError:
                    continue  # removed (an upload taken back)
                except StorageError:
                    self._rescan()
                    return
                changes[filename] = FileRecord.from_json(data)
            old = self._projects.get(project)
            files = list(old.files) if old else []
            for filename, record in changes.items():
                at = next((i for i, f in enumerate(files) if f.filename == filename), None)
                if at is not None:
                    del files[at]
                if record is not None:
                    bisect.insort(files, record, key=file_order)
            if files:
                # stamp 0: a later rescan reads it again rather than trust a stamp not read here
                self._projects[project] = Project(NormalizedName(project), tuple(files))
            else:
                self._projects.pop(project, None)
        if touched:
            self.version += 1

    @property
    def generation(self) -> object:
        """The generation this process last loaded (without a journal: changes with every change
        in any process)."""
        return self._generation

    def _announce(self, *entries: str) -> None:
        """Tell the other processes what changed (after it is stored)."""
        if self._journal is not None:
            self._journal.announce(entries)
        else:
            self._bump()

    def _bump(self) -> None:
        stamp = uuid.uuid4().hex.encode()
        try:
            self.storage.put_bytes(GENERATION, stamp)
        except StorageFull:
            # A full disk must not hide a change that is already stored from other processes.
            self.storage.rewrite_in_place(GENERATION, stamp)

    # -- reading ----------------------------------------------------------------------------
    def project(self, name: str) -> Project | None:
        return self._projects.get(name)

    def projects(self) -> list[Project]:
        return [self._projects[n] for n in sorted(self._projects)]

    # -- writing ----------------------------------------------------------------------------
    def _make_record(
        self, info: distfile.DistInfo, sha256: str, size: int, upload_time: str
    ) -> FileRecord:
        return FileRecord(
            project=info.name.project,
            filename=info.name.filename,
            version=str(info.name.version),
            sha256=sha256,
            size=size,
            upload_time=upload_time,
            requires_python=info.requires_python,
            metadata_sha256=(
                hashlib.sha256(info.metadata).hexdigest() if info.name.kind == "wheel" else None
            ),
            summary=info.summary,
        )

    def _store_metadata(
        self, record: FileRecord, info: distfile.DistInfo, *, durable: bool = True
    ) -> None:
        if record.metadata_sha256:
            key = file_key(record.project, record.filename) + ".metadata"
            self.storage.put_bytes(key, info.metadata, durable=durable)

    def read_metadata(self, record: FileRecord) -> bytes | None:
        """A wheel's PEP 658 metadata as stored beside it; None when it has none (or it is gone)."""
        if not record.metadata_sha256:
            return None
        try:
            return self.storage.read_bytes(file_key(record.project, record.filename) + ".metadata")
        except FileNotFoundError:
            return None

    def _sync_file(self, record: FileRecord) -> None:
        """Make the file and its .metadata (written with durable=False) durable, together: their
        bytes, then their folder once."""
        key = file_key(record.project, record.filename)
        self.storage.sync([key, key + ".metadata"] if record.metadata_sha256 else [key])

    def add(
        self, info: distfile.DistInfo, fh, sha256: str, size: int, *, notify: bool = True
    ) -> FileRecord:
        """Store a checked distribution: the file (never replacing one), its metadata, then its
        record, which publishes it. AlreadyExists if the filename is taken.

        notify=False skips telling other processes (for bulk loads; call notify() once after)."""
        record = self._make_record(info, sha256, size, now_iso())
        key = file_key(record.project, record.filename)
        entry = f"{record.project}/{record.filename}"
        # The project's lock is held from the file to its record: a file without a record while
        # nobody holds the lock is an orphan of a killed writer (see existing()).
        with self.storage.locked(_project_lock(record.project)):
            clash = self._same_distribution(info.name)
            if clash is not None:
                raise AlreadyExists(file_key(record.project, clash))
            fh.seek(0)
            # A put that fails or finds the name taken (AlreadyExists) leaves nothing of ours.
            self.storage.put_atomic(key, fh, overwrite=False, durable=False)
            try:
                # After the file: a losing concurrent upload must not replace the winner's .metadata.
                self._store_metadata(record, info, durable=False)
                self._sync_file(record)
                # Not fsynced: after a power cut, load() makes a missing or torn record again.
                self.storage.put_bytes(
                    record_key(record.project, record.filename), record.to_json(), durable=False
                )
                if notify:
                    self._announce(entry)
            except BaseException:
                # The disk filled up (or the process is stopping) between the file and its record:
                # take the upload back, so that what the index lists is exactly what was answered 200.
                for k in (record_key(record.project, record.filename), key + ".metadata", key):
                    self.storage.delete(k)
                with contextlib.suppress(StorageError, OSError):
                    self._announce(entry)  # in case another process saw the record in between
                raise
        if notify:
            self.refresh()
        return record

    def notify(self) -> None:
        """Tell every process (and this one) that storage changed: all of them re-read it."""
        self._announce(RESCAN)
        self.refresh()

    def farm_changed(self) -> None:
        """Tell every process (and this one) that the farm's data changed."""
        self._announce(FARM)
        self.refresh()

    def _same_distribution(self, name: distfile.DistName) -> str | None:
        """The stored filename that is the same distribution as `name` under another spelling
        (Foo_Bar / foo.bar, 1.0 / 1.0.0): same normalized name, version, build and tags."""
        for entry in self.storage.list(f"records/{name.project}"):
            stored = entry.removesuffix(".json")
            if stored != name.filename and distfile.dist_key(stored) == name.key:
                return stored
        return None

    def conflict(self, name: distfile.DistName) -> FileRecord | None:
        """The stored file an upload of `name` would duplicate: the same canonical filename, or
        the same distribution under another spelling (see _same_distribution); else None."""
        found = self.existing(name.project, name.filename)
        if found is not None:
            return found
        other = self._same_distribution(name)
        if other is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            return FileRecord.from_json(self.storage.read_bytes(record_key(name.project, other)))
        return self.existing(name.project, other)

    def known_conflict(self, name: distfile.DistName) -> FileRecord | None:
        """The check an upload makes before it stores anything (exact here: the records are in
        the storage); a clash it misses is found when the file is stored (AlreadyExists), and
        conflict() then names it."""
        return self.conflict(name)

    def existing(self, project: str, filename: str) -> FileRecord | None:
        """The record of a stored file, looked up in storage (not the cache) to be exact.

        A stored file without a record is an upload in flight (its writer holds the project's lock)
        or the orphan of a writer killed between the two writes: that one is published here, by the
        first worker that meets it, as the master does at start (a file nobody can see must not
        block its own re-upload)."""
        key = file_key(project, filename)
        if not self.storage.exists(key):
            return None
        with contextlib.suppress(FileNotFoundError):
            return FileRecord.from_json(self.storage.read_bytes(record_key(project, filename)))
        with self.storage.locked(_project_lock(project)):  # waits for an upload in flight
            if not self.storage.exists(key):
                return None
            with contextlib.suppress(FileNotFoundError):
                return FileRecord.from_json(self.storage.read_bytes(record_key(project, filename)))
            try:
                self._record_existing(NormalizedName(project), filename)
            except distfile.InvalidDistribution as exc:
                log.warning("removing unpublished file %s/%s: %s", project, filename, exc)
                for k in (key + ".metadata", key):
                    self.storage.delete(k)
                return None
            log.warning(
                "published %s/%s, left unpublished by an interrupted upload", project, filename
            )
            self._announce(f"{project}/{filename}")
        self.refresh()
        return FileRecord.from_json(self.storage.read_bytes(record_key(project, filename)))

    def set_yanked(self, project: str, selector: str, reason: str | None) -> list[FileRecord]:
        """Yank (reason is a string, maybe empty) or un-yank (None) a file or every file of a
        version. Returns the changed records; LookupError when nothing matches."""
        name = canonicalize_name(project)
        self.refresh()
        matches = selected_files(self.project(name), name, selector)
        changed = []
        try:
            for f in matches:
                updated = replace(f, yanked=reason)
                # Each record is replaced whole; on a full disk the ones not reached keep their state.
                self.storage.put_bytes(record_key(f.project, f.filename), updated.to_json())
                changed.append(updated)
        finally:
            if changed:
                self._announce(*(f"{f.project}/{f.filename}" for f in changed))
                self.refresh()
        return changed


__all__ = ["AlreadyExists", "Catalog", "FileRecord", "Project", "file_key", "record_key"]
