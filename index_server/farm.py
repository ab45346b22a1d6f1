"""What the build farm tells the index: its status document, build logs and wheel provenance.

The nightly pushes them (builder/farm/client.py -> index_server/farm_api.py); the index only stores
and shows them. Storage layout (keys of index_server.storage, next to the catalog's):
  farm/status.json                         the farm's whole state (farm_status.schema.json)
  farm/logs/<project>/<log id>.log         a build log, as sent
  farm/provenance/<project>/<wheel>.json   a stored wheel's provenance (provenance.schema.json)

With `--database` the status document is a row of the database instead (index_server/farm_sql.py);
logs and provenance stay in the storage.

Every write is announced through the catalog (`Catalog.farm_changed`), so each worker notices it with
the stat the catalog already makes per request: `Farm.refresh()` does nothing until the catalog's
farm generation changes (not on uploads), then re-reads the status document (only if it changed) and
the stamps of the logs and provenance folders.

This module does not import Flask. The limits shared with the farm are in builder/common/farm_protocol.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from builder.common.outcome import LABELS
from index_server.catalog import RACY_NS, Catalog
from index_server.storage import Storage

log = logging.getLogger(__name__)

STATUS_KEY = "farm/status.json"
LOGS = "farm/logs"
PROVENANCE = "farm/provenance"
# Terminal control in build logs (ECMA-48): noise in a page at best, a hidden link or a retitled
# terminal for whoever copies it at worst. Strings (OSC, DCS, SOS, PM, APC, 7- or 8-bit, terminated
# by BEL or ST or not at all), CSI sequences of every kind, ESC with intermediates and a final byte,
# then any C1 control or C0 control but tab, newline and carriage return that is left. An
# unterminated string ends at the end of its line.
_TERMINAL_CONTROL = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
LOG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")

# Display order and wording of the cell statuses: the farm's one vocabulary.
STATUS_LABELS = LABELS


class FarmDataError(ValueError):
    """A document or name the farm sent is not acceptable; the message says why."""


def log_key(project: str, log_id: str) -> str:
    return f"{LOGS}/{project}/{log_id}.log"


def provenance_key(project: str, wheel: str) -> str:
    return f"{PROVENANCE}/{project}/{wheel}.json"


def project_name(name: str) -> NormalizedName:
    """The normalized form of a project name; FarmDataError when it is not a valid name."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise FarmDataError(f"invalid project name {name!r}") from None


def check_log_id(log_id: str) -> str:
    if not LOG_ID.fullmatch(log_id) or ".." in log_id:
        raise FarmDataError(
            f"invalid log id {log_id!r}: use letters, digits, '.', '_', '+', '-' "
            "(not starting with '.', no '..', at most 200 characters)"
        )
    return log_id


def check_time(value: str, where: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise FarmDataError(f"{where}: {value!r} is not an ISO 8601 time") from None
    return value


@functools.cache
def _validator(schema_file: str):
    from jsonschema import Draft202012Validator

    schema = json.loads(Path(__file__).with_name(schema_file).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(doc: Any, schema_file: str, what: str) -> None:
    """FarmDataError naming the first (most relevant) schema violation and where it is."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema_file).iter_errors(doc))
    if error is None:
        return
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    raise FarmDataError(f"{what} does not match {schema_file}: at {where or '(top)'}: {message}")


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FarmDataError(f"{what} is not valid JSON: {exc}") from None


# -- the status document -------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    project: NormalizedName
    version: str
    python: str
    target: str
    status: str
    reason: str | None = None
    failure_class: str | None = None
    key_line: str | None = None
    log: str | None = None
    wheel: str | None = None
    duration: float | None = None
    when: str | None = None
    published: bool = False  # on this index; `status` still says how the wheel was proven

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status] + (", published" if self.published else "")

    @property
    def column(self) -> tuple[str, str]:
        return (self.python, self.target)


@dataclass(frozen=True)
class RecipeInfo:
    project: NormalizedName
    path: str
    text: str
    hash: str


@dataclass(frozen=True)
class Grid:
    """Cells laid out as rows of (project, version) by columns of (python, target)."""

    columns: list[tuple[str, str]]  # sorted by target, then Python version
    rows: list[tuple[str, str, list[Cell | None]]]  # (project, version, one entry per column)

    @property
    def targets(self) -> list[tuple[str, int]]:
        """(target, number of Python columns) for a two-level table header."""
        counts = Counter(t for _p, t in self.columns)
        return [(t, counts[t]) for t in dict.fromkeys(t for _p, t in self.columns)]


def make_grid(cells: list[Cell]) -> Grid:
    columns = sorted(
        {c.column for c in cells}, key=lambda pt: (pt[1], Version(pt[0].rstrip("t")), pt[0])
    )
    index = {col: i for i, col in enumerate(columns)}
    by_row: dict[tuple[str, str], list[Cell | None]] = {}
    for c in cells:
        row = by_row.setdefault((c.project, c.version), [None] * len(columns))
        row[index[c.column]] = c
    keys = sorted(by_row, key=lambda pv: Version(pv[1]), reverse=True)  # newest version first,
    keys.sort(key=lambda pv: pv[0])  # ... within each project (the sort is stable)
    return Grid(columns, [(p, v, by_row[(p, v)]) for p, v in keys])


@dataclass(frozen=True)
class FarmStatus:
    generated: str
    run: dict[str, Any]
    recipes: dict[NormalizedName, RecipeInfo]
    cells: tuple[Cell, ...]
    by_project: dict[NormalizedName, list[Cell]] = field(default_factory=dict, repr=False)
    by_log: dict[tuple[str, str], Cell] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for c in self.cells:
            self.by_project.setdefault(c.project, []).append(c)
            if c.log:
                self.by_log.setdefault((c.project, c.log), c)

    def has_project(self, name: str) -> bool:
        return name in self.by_project or name in self.recipes

    @property
    def counts(self) -> list[tuple[str, str, int]]:
        """(status, label, number of cells) for every status that occurs, in display order."""
        counts = Counter(c.status for c in self.cells)
        return [(s, label, counts[s]) for s, label in STATUS_LABELS.items() if counts[s]]

    def failures(self, limit: int = 20) -> list[Cell]:
        """Failed cells, newest first (cells without a time last)."""
        failed = [c for c in self.cells if c.status == "failed"]
        failed.sort(key=lambda c: c.when or "", reverse=True)
        return failed[:limit]


def parse_status(data: bytes, *, check_schema: bool = True) -> FarmStatus:
    """Validate a status document (schema, then names, versions, wheels, times) and read it.

    check_schema=False skips the JSON Schema pass (most of the time, for a large document) when
    reading back a document that was validated when it was stored."""
    doc = parse_json(data, "the status document")
    if check_schema:
        validate(doc, "farm_status.schema.json", "the status document")
    check_time(doc["generated"], "generated")
    for key in ("started", "finished"):
        if doc["run"].get(key):
            check_time(doc["run"][key], f"run.{key}")
    recipes = {}
    for name, r in doc["recipes"].items():
        project = _at(f"recipes[{name!r}]", project_name, name)
        recipes[project] = RecipeInfo(project, r["recipe_path"], r["recipe_text"], r["recipe_hash"])
    cells, seen = [], set()
    for i, raw in enumerate(doc["cells"]):
        where = f"cells[{i}]"
        project = _at(where, project_name, raw["project"])
        try:
            version = Version(raw["version"])
        except InvalidVersion:
            raise FarmDataError(f"{where}: invalid version {raw['version']!r}") from None
        if raw.get("log"):
            _at(where, check_log_id, raw["log"])
        if raw.get("when"):
            check_time(raw["when"], f"{where}.when")
        if raw.get("wheel"):
            _check_cell_wheel(where, raw["wheel"], project, version)
        key = (project, version, raw["python"], raw["target"])
        if key in seen:
            raise FarmDataError(
                f"{where}: a second cell for {project} {version} Python {raw['python']} {raw['target']}"
            )
        seen.add(key)
        cells.append(Cell(**{**raw, "project": project}))
    return FarmStatus(doc["generated"], doc["run"], recipes, tuple(cells))


def _at(where: str, check, value: str):
    try:
        return check(value)
    except FarmDataError as exc:
        raise FarmDataError(f"{where}: {exc}") from None


def _check_cell_wheel(where: str, wheel: str, project: str, version: Version) -> None:
    try:
        name, wheel_version, _build, _tags = parse_wheel_filename(wheel)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise FarmDataError(f"{where}: invalid wheel filename {wheel!r}: {exc}") from None
    if name != project or wheel_version != version:
        raise FarmDataError(f"{where}: wheel {wheel!r} is not a wheel of {project} {version}")


# -- what each worker keeps ----------------------------------------------------------------------
@dataclass(frozen=True)
class LogEntry:
    id: str
    size: int
    mtime: str  # "YYYY-MM-DD HH:MM" UTC
    cell: Cell | None


class StatusStore:
    """Where the status document is kept: the storage key farm/status.json (without a database)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def stamp(self) -> object | None:
        """What changes whenever the document does (None: there is none). Cheap: one stat."""
        st = self.storage.stat(STATUS_KEY)
        if st is not None and time.time_ns() - st.mtime_ns < RACY_NS:
            return object()  # the clock's tick may hide a second write: read it again
        return st

    def read(self) -> bytes | None:
        try:
            return self.storage.read_bytes(STATUS_KEY)
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        """Replace the document whole (readers see the old one or the new one)."""
        self.storage.put_bytes(STATUS_KEY, data)


class Farm:
    """The farm data as this process last saw it; `version` changes whenever any of it changes."""

    def __init__(
        self, storage: Storage, catalog: Catalog, status_store: StatusStore | None = None
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.status_store = status_store or StatusStore(storage)
        self._lock = threading.Lock()
        self._seen: object = object()  # the catalog generation last checked (never equal at first)
        self._status_stamp: object | None = None
        self._status_digest: str | None = None
        self._stamps: dict[str, int] = {}
        self.status: FarmStatus | None = None
        self.version = 0

    def refresh(self) -> None:
        """Re-check storage when the catalog's generation moved (call after catalog.refresh())."""
        generation = self.catalog.farm_generation
        if generation == self._seen:
            return
        with self._lock:
            if generation == self._seen:
                return
            self._seen = generation
            changed = self._reload_status()
            stamps, racy = self._folder_stamps()
            if stamps != self._stamps or racy:
                self._stamps = stamps
                changed = True
            if changed:
                self.version += 1

    def _reload_status(self) -> bool:
        stamp = self.status_store.stamp()
        if stamp is None:
            changed = self.status is not None
            self.status, self._status_stamp, self._status_digest = None, None, None
            return changed
        if stamp == self._status_stamp:
            return False
        data = self.status_store.read()
        if data is None:
            return False
        self._status_stamp = stamp
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._status_digest:
            return False
        self._status_digest = digest
        try:
            self.status = parse_status(data, check_schema=False)
        except (FarmDataError, KeyError, TypeError, AttributeError) as exc:
            # Stored by an older version with other rules: show no status rather than fail.
            log.warning("ignoring the stored farm status: %s", exc)
            self.status = None
        return True

    def _folder_stamps(self) -> tuple[dict[str, int], bool]:
        stamps, racy, now = {}, False, time.time_ns()
        for top in (LOGS, PROVENANCE):
            for project in self.storage.list(top):
                st = self.storage.stat(f"{top}/{project}")
                if st is not None:
                    stamps[f"{top}/{project}"] = st.mtime_ns
                    racy = racy or now - st.mtime_ns < RACY_NS
        return stamps, racy

    def stored(self) -> None:
        """After a write: tell every worker (and this one) that the farm's data changed."""
        self.catalog.farm_changed()
        self.refresh()

    # -- reading (for pages) --------------------------------------------------------------------
    def provenance_of(self, project: str) -> set[str]:
        """Filenames of the project's wheels that have a provenance record."""
        return {
            n.removesuffix(".json")
            for n in self.storage.list(f"{PROVENANCE}/{project}")
            if n.endswith(".json")
        }

    def logs_of(self, project: str) -> list[LogEntry]:
        """The project's stored logs, newest first."""
        entries = []
        for name in self.storage.list(f"{LOGS}/{project}"):
            log_id = name.removesuffix(".log")
            st = self.storage.stat(f"{LOGS}/{project}/{name}")
            if st is None or not name.endswith(".log"):
                continue
            when = datetime.fromtimestamp(st.mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")
            cell = self.status.by_log.get((project, log_id)) if self.status else None
            entries.append((st.mtime_ns, LogEntry(log_id, st.size, when, cell)))
        return [e for _t, e in sorted(entries, key=lambda te: te[0], reverse=True)]


def strip_ansi(text: str) -> str:
    """The text without terminal control sequences or control characters (tab and newlines stay)."""
    return _TERMINAL_CONTROL.sub("", text)


def find_key_line(text: str, key_line: str | None) -> tuple[str, str, str]:
    """Split a log into (before, the key line, after) around the first line that is the key line
    (or else contains it); (text, "", "") when it is not there."""
    wanted = strip_ansi(key_line or "").strip()
    if not wanted:
        return text, "", ""
    lines = text.splitlines(keepends=True)
    for match in (lambda s: s.strip() == wanted, lambda s: wanted in s):
        offset = 0
        for line in lines:
            if match(line):
                body = line.rstrip("\r\n")
                return text[:offset], body, text[offset + len(body) :]
            offset += len(line)
    return text, "", ""
