"""The build ledger: every build attempt with its inputs, outcome, log and output wheels.

One code path over SQLAlchemy Core: an embedded SQLite file in the data folder by default, PostgreSQL
when a `postgresql://` URL is given. Every write is one short transaction, so a process killed part way
loses nothing it committed and never leaves half a row. The schema is created and migrated on open
(`schema_version` holds the applied version).

The ledger decides what the next run does with a job (`decide`): work whose inputs (recipe hash, sdist
sha256, Python, target, toolchain versions; hashed into `input_key`) already succeeded is skipped; a
deterministic failure is not retried until an input changes; a transient failure (network, timeout,
killed) is retried once its backoff, which doubles with each consecutive transient failure, has passed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from packaging.utils import canonicalize_name
from sqlalchemy.engine import Connection, Engine

from builder.common.outcome import SUCCESS, Outcome
from builder.common.paths import data_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_FILENAME = "ledger.sqlite3"


class LedgerError(Exception):
    """The ledger cannot be opened or used; the message names the database."""


class Action(enum.StrEnum):
    BUILD = "build"  # new or changed inputs
    RETRY = (
        "retry"  # the same inputs failed transiently (or were interrupted) and backoff has passed
    )
    SKIP = "skip"  # done, deterministic failure with the same inputs, or still backing off


class JobLike(Protocol):
    """What the ledger reads from a planned job (`builder.plan.planner.Job`)."""

    project: str
    version: str
    python: str
    target: str
    sdist_sha256: str


@dataclass(frozen=True)
class Inputs:
    """Everything that determines a build's result; `key` is their stable hash.

    The project and version name the cell (the sdist's sha256 already pins its bytes); the rest are
    the build's inputs proper.
    """

    project: str
    version: str
    recipe_hash: str
    sdist_sha256: str
    python: str
    target: str
    toolchain: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def for_job(
        cls, job: JobLike, recipe_hash: str, toolchain: Mapping[str, str] | None = None
    ) -> Inputs:
        """The inputs of a planned job: its sdist's sha256, Python and target, plus the recipe and tools."""
        return cls(
            project=canonicalize_name(job.project),
            version=str(job.version),
            recipe_hash=recipe_hash,
            sdist_sha256=job.sdist_sha256,
            python=job.python,
            target=job.target,
            toolchain=dict(toolchain or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "recipe_hash": self.recipe_hash,
            "sdist_sha256": self.sdist_sha256,
            "python": self.python,
            "target": self.target,
            "toolchain": dict(sorted(self.toolchain.items())),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Inputs:
        return cls(
            project=str(d["project"]),
            version=str(d["version"]),
            recipe_hash=str(d["recipe_hash"]),
            sdist_sha256=str(d["sdist_sha256"]),
            python=str(d["python"]),
            target=str(d["target"]),
            toolchain={str(k): str(v) for k, v in dict(d.get("toolchain") or {}).items()},
        )

    @property
    def key(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class WheelRecord:
    filename: str
    sha256: str


@dataclass(frozen=True)
class Attempt:
    id: int
    run_id: str
    project: str
    version: str
    python: str
    target: str
    input_key: str
    inputs: Inputs
    outcome: Outcome
    started_at: float
    finished_at: float | None
    duration: float | None
    failure_class: str | None
    transient: bool | None
    key_line: str | None
    log_path: str | None
    wheels: tuple[WheelRecord, ...]
    job: Mapping[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "project": self.project,
            "version": self.version,
            "python": self.python,
            "target": self.target,
            "input_key": self.input_key,
            "inputs": self.inputs.to_dict(),
            "outcome": str(self.outcome),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "failure_class": self.failure_class,
            "transient": self.transient,
            "key_line": self.key_line,
            "log_path": self.log_path,
            "wheels": [{"filename": w.filename, "sha256": w.sha256} for w in self.wheels],
        }


@dataclass(frozen=True)
class NextStep:
    action: Action
    reason: str  # "new" | "changed" | "done" | "failed" | "backoff" | "transient" | "interrupted"
    previous: Attempt | None = None  # the attempt the decision rests on
    not_before: float | None = None  # for "backoff": when a retry becomes due (unix time)

    @property
    def run(self) -> bool:
        return self.action is not Action.SKIP


@dataclass(frozen=True)
class CorruptRow:
    """A row that could not be read back (bad JSON, unknown outcome, ...): reported and skipped."""

    id: int
    error: str


@dataclass(frozen=True)
class Summary:
    """The farm at a glance: the latest attempt of every (project, version, python, target) cell."""

    cells: int
    by_outcome: Mapping[str, int]
    projects: int
    attempts: int
    failures: tuple[Attempt, ...]  # latest attempt failed
    last_run: str | None
    last_activity: float | None
    corrupt: tuple[CorruptRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cells": self.cells,
            "by_outcome": dict(self.by_outcome),
            "projects": self.projects,
            "attempts": self.attempts,
            "failures": [a.to_dict() for a in self.failures],
            "last_run": self.last_run,
            "last_activity": self.last_activity,
            "corrupt": [{"id": c.id, "error": c.error} for c in self.corrupt],
        }


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("python", sa.String(20), nullable=False),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("input_key", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # JSON
    sa.Column("job", sa.Text, nullable=True),  # JSON: Job.to_dict()
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("failure_class", sa.String(40), nullable=True),
    sa.Column("transient", sa.Boolean, nullable=True),
    sa.Column("key_line", sa.Text, nullable=True),
    sa.Column("log_path", sa.Text, nullable=True),
    sa.Column("wheels", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.UniqueConstraint("run_id", "input_key", name="attempts_run_input"),
    sa.Index("attempts_cell", "project", "version", "python", "target", "id"),
)


def _migrate_to_1(conn: Connection) -> None:
    attempts.create(conn, checkfirst=True)


def _migrate_to_2(conn: Connection) -> None:
    # One outcome vocabulary (builder.common.outcome): "not-tested" became "checked-not-run".
    conn.execute(
        attempts.update()
        .where(attempts.c.outcome == "not-tested")
        .values(outcome=Outcome.CHECKED_NOT_RUN.value)
    )


# version -> step that brings the schema from version-1 to version; append, never edit.
MIGRATIONS = {1: _migrate_to_1, 2: _migrate_to_2}


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def database_url(url_or_path: str | Path | None) -> str:
    """A SQLAlchemy URL for a path, a `sqlite:` URL or a `postgresql://` URL (psycopg 3 driver)."""
    if url_or_path is None:
        url_or_path = data_dir() / DEFAULT_FILENAME
    text = str(url_or_path)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    if text.startswith(("postgresql+", "sqlite:")):
        return text
    if "://" in text:
        raise LedgerError(f"{text}: unsupported ledger URL (use a file path or postgresql://...)")
    path = Path(text).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sqlite_engine(url: str) -> Engine:
    # The pool hands a connection to one thread at a time, so threads may share the engine.
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Manage transactions ourselves (the driver's implicit BEGIN comes too late for
        # read-then-write) and make every commit durable.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # IMMEDIATE takes the write lock up front: two writers never interleave a read and a write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _json_loads(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} column is not JSON: {exc}") from None


def _row_to_attempt(row: sa.Row) -> Attempt:
    m = row._mapping
    inputs = _json_loads(m["inputs"], "inputs")
    if not isinstance(inputs, dict):
        raise ValueError("inputs column is not a JSON object")
    wheels = _json_loads(m["wheels"], "wheels")
    if not isinstance(wheels, list):
        raise ValueError("wheels column is not a JSON list")
    job = _json_loads(m["job"], "job")
    try:
        outcome = Outcome(m["outcome"])
        wheel_records = tuple(WheelRecord(str(w["filename"]), str(w["sha256"])) for w in wheels)
        parsed_inputs = Inputs.from_dict(inputs)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable value: {exc!r}") from None
    return Attempt(
        id=m["id"],
        run_id=m["run_id"],
        project=m["project"],
        version=m["version"],
        python=m["python"],
        target=m["target"],
        input_key=m["input_key"],
        inputs=parsed_inputs,
        outcome=outcome,
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration=m["duration"],
        failure_class=m["failure_class"],
        transient=m["transient"],
        key_line=m["key_line"],
        log_path=m["log_path"],
        wheels=wheel_records,
        job=job,
    )


class Ledger:
    """Open with `Ledger.open(url_or_path)`; safe to share between threads and processes."""

    def __init__(
        self,
        engine: Engine,
        *,
        run_id: str | None = None,
        backoff_base: float = 3600.0,
        backoff_cap: float = 7 * 86400.0,
    ) -> None:
        self.engine = engine
        self.run_id = run_id or new_run_id()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.corrupt: dict[int, CorruptRow] = {}  # rows found unreadable so far, by id

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url_or_path: str | Path | None = None,
        *,
        run_id: str | None = None,
        backoff_base: float = 3600.0,
        backoff_cap: float = 7 * 86400.0,
    ) -> Ledger:
        """Open (creating or migrating) the ledger at a path or URL; default: the data folder."""
        url = database_url(url_or_path)
        if url.startswith("sqlite"):
            engine = _sqlite_engine(url)
        else:  # a nightly runs for hours: check pooled connections before use
            engine = sa.create_engine(url, pool_pre_ping=True)
        ledger = cls(engine, run_id=run_id, backoff_base=backoff_base, backoff_cap=backoff_cap)
        try:
            ledger._migrate()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise LedgerError(
                f"{engine.url!r}: cannot open the ledger: {exc.__cause__ or exc}"
            ) from exc
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The database, for messages: a SQLite file's path, or the URL without its password."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            return url.database
        return url.render_as_string(hide_password=True)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a database refusing a write (disk full, read-only, I/O error) into a LedgerError.

        The refused transaction is rolled back whole, so nothing committed before is touched and no
        half row is left; the write can be repeated once the cause is fixed.
        """
        try:
            yield
        except sa.exc.IntegrityError:
            raise  # a concurrent writer won a race: the caller reads its row back
        except sa.exc.DatabaseError as exc:
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            hint = "; free some space and run again" if "full" in cause else ""
            raise LedgerError(f"{self.where}: could not record {what}: {cause}{hint}") from exc

    def _migrate(self) -> None:
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    if self.engine.dialect.name == "postgresql":
                        # One migrator at a time across processes.
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
                    schema_version.create(conn, checkfirst=True)
                    current = conn.execute(
                        sa.select(sa.func.max(schema_version.c.version))
                    ).scalar()
                    current = current or 0
                    if current > SCHEMA_VERSION:
                        raise LedgerError(
                            f"{self.engine.url!r}: ledger schema version {current} is newer than "
                            f"this wheelfarm understands ({SCHEMA_VERSION}); upgrade wheelfarm"
                        )
                    for version in range(current + 1, SCHEMA_VERSION + 1):
                        MIGRATIONS[version](conn)
                        conn.execute(
                            schema_version.insert().values(version=version, applied_at=time.time())
                        )
                return
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                # Another process created the same tables at the same moment: look again.
                if attempt == 2:
                    raise

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)

    # -- writing -------------------------------------------------------------------------------------

    def start_attempt(self, job: JobLike, inputs: Inputs, *, run_id: str | None = None) -> int:
        """Record that `job` starts with `inputs` in this run; return the attempt id.

        Idempotent: a resumed run (same run id) gets the existing attempt back, never a second row.
        """
        run_id = run_id or self.run_id
        key = inputs.key
        where = sa.and_(attempts.c.run_id == run_id, attempts.c.input_key == key)
        to_dict = getattr(job, "to_dict", None)
        job_json = json.dumps(to_dict(), sort_keys=True) if callable(to_dict) else None
        for _ in range(2):
            try:
                with (
                    self._writing(f"the start of {job.project} {job.version}"),
                    self.engine.begin() as conn,
                ):
                    existing = conn.execute(sa.select(attempts.c.id).where(where)).scalar()
                    if existing is not None:
                        return int(existing)
                    result = conn.execute(
                        attempts.insert().values(
                            run_id=run_id,
                            project=canonicalize_name(job.project),
                            version=str(job.version),
                            python=job.python,
                            target=job.target,
                            input_key=key,
                            inputs=json.dumps(inputs.to_dict(), sort_keys=True),
                            job=job_json,
                            outcome=Outcome.RUNNING.value,
                            started_at=time.time(),
                            wheels="[]",
                        )
                    )
                    return int(result.inserted_primary_key[0])
            except sa.exc.IntegrityError:
                continue  # another process inserted the same (run, inputs) first: read it back
        raise LedgerError(f"attempt for run {run_id} and inputs {key} could not be recorded")

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: Outcome | str,
        *,
        failure_class: str | None = None,
        transient: bool | None = None,
        key_line: str | None = None,
        log_path: str | Path | None = None,
        wheels: Iterable[WheelRecord | tuple[str, str]] = (),
        duration: float | None = None,
        failure: Any = None,
    ) -> None:
        """Record how an attempt ended, in one atomic update.

        `failure` may be a `builder.common.classify.Failure` (its class, transience and key line are used).
        """
        outcome = Outcome(outcome)
        if outcome is Outcome.RUNNING:
            raise ValueError("finish_attempt needs a final outcome, not 'running'")
        if failure is not None:
            failure_class = failure_class or str(failure.cls)
            transient = failure.transient if transient is None else transient
            key_line = key_line or failure.key_line
        records = [w if isinstance(w, WheelRecord) else WheelRecord(*w) for w in wheels]
        now = time.time()
        with self._writing(f"the end of attempt {attempt_id}"), self.engine.begin() as conn:
            started = conn.execute(
                sa.select(attempts.c.started_at).where(attempts.c.id == attempt_id)
            ).scalar()
            if started is None:
                raise LedgerError(f"no attempt {attempt_id} in the ledger")
            conn.execute(
                attempts.update()
                .where(attempts.c.id == attempt_id)
                .values(
                    outcome=outcome.value,
                    finished_at=now,
                    duration=duration if duration is not None else max(0.0, now - started),
                    failure_class=failure_class if outcome is Outcome.FAILED else None,
                    transient=bool(transient) if outcome is Outcome.FAILED else None,
                    key_line=(key_line or "")[:2000] if outcome is Outcome.FAILED else None,
                    log_path=str(log_path) if log_path is not None else None,
                    wheels=json.dumps(
                        [{"filename": w.filename, "sha256": w.sha256} for w in records]
                    ),
                )
            )

    def mark_published(self, attempt_id: int) -> None:
        """A built (and tested) attempt's wheels reached the index."""
        with self._writing(f"attempt {attempt_id} as published"), self.engine.begin() as conn:
            updated = conn.execute(
                attempts.update()
                .where(attempts.c.id == attempt_id)
                .where(attempts.c.outcome.in_([o.value for o in SUCCESS]))
                .values(outcome=Outcome.PUBLISHED.value)
            ).rowcount
        if updated != 1:
            raise LedgerError(f"attempt {attempt_id} is not a finished, successful build")

    # -- reading -------------------------------------------------------------------------------------

    def _read(self, rows: Iterable[sa.Row]) -> Iterator[Attempt]:
        for row in rows:
            try:
                yield _row_to_attempt(row)
            except ValueError as exc:
                rid = int(row._mapping["id"])
                if rid not in self.corrupt:
                    log.warning("ledger row %s is corrupt and skipped: %s", rid, exc)
                    self.corrupt[rid] = CorruptRow(rid, str(exc))

    def get(self, attempt_id: int) -> Attempt | None:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(attempts).where(attempts.c.id == attempt_id)).all()
        return next(self._read(rows), None)

    def attempts_for(self, job: JobLike) -> list[Attempt]:
        """Every readable attempt for the job's (project, version, python, target) cell, oldest first."""
        query = (
            sa.select(attempts)
            .where(attempts.c.project == canonicalize_name(job.project))
            .where(attempts.c.version == str(job.version))
            .where(attempts.c.python == job.python)
            .where(attempts.c.target == job.target)
            .order_by(attempts.c.id)
        )
        with self.engine.connect() as conn:
            return list(self._read(conn.execute(query).all()))

    def history(self, project: str) -> list[Attempt]:
        """Every readable attempt for a project, newest first."""
        query = (
            sa.select(attempts)
            .where(attempts.c.project == canonicalize_name(project))
            .order_by(attempts.c.id.desc())
        )
        with self.engine.connect() as conn:
            return list(self._read(conn.execute(query).all()))

    def run_attempts(self, run_id: str | None = None) -> list[Attempt]:
        query = (
            sa.select(attempts)
            .where(attempts.c.run_id == (run_id or self.run_id))
            .order_by(attempts.c.id)
        )
        with self.engine.connect() as conn:
            return list(self._read(conn.execute(query).all()))

    def last_unfinished_run(self) -> str | None:
        """The newest run that left attempts running (killed part way): a nightly may resume it."""
        query = (
            sa.select(attempts.c.run_id)
            .where(attempts.c.outcome == Outcome.RUNNING.value)
            .order_by(attempts.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def decide(self, job: JobLike, inputs: Inputs, *, now: float | None = None) -> NextStep:
        """What to do with `job` given what the ledger knows about the same cell."""
        now = time.time() if now is None else now
        cell = self.attempts_for(job)
        same = [a for a in cell if a.input_key == inputs.key]
        if not same:
            return NextStep(Action.BUILD, "changed" if cell else "new", cell[-1] if cell else None)
        done = [a for a in same if a.outcome in SUCCESS]
        if done:
            return NextStep(Action.SKIP, "done", done[-1])
        latest = same[-1]
        if latest.outcome is Outcome.RUNNING:
            # Left running by a killed process (or being resumed by this run): do it again.
            return NextStep(Action.RETRY, "interrupted", latest)
        if not latest.transient:
            return NextStep(Action.SKIP, "failed", latest)
        streak = 0
        for attempt in reversed(same):
            if attempt.outcome is Outcome.FAILED and attempt.transient:
                streak += 1
            elif attempt.outcome is not Outcome.RUNNING:  # interrupted attempts do not count
                break
        wait = min(self.backoff_cap, self.backoff_base * 2 ** (streak - 1))
        due = (latest.finished_at or latest.started_at) + wait
        if now >= due:
            return NextStep(Action.RETRY, "transient", latest, due)
        return NextStep(Action.SKIP, "backoff", latest, due)

    def summary(self) -> Summary:
        """Counts over the latest attempt of every cell, for status pages."""
        latest_ids = (
            sa.select(sa.func.max(attempts.c.id).label("id"))
            .group_by(attempts.c.project, attempts.c.version, attempts.c.python, attempts.c.target)
            .subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(attempts).where(attempts.c.id.in_(sa.select(latest_ids.c.id)))
            ).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar() or 0
            last = conn.execute(
                sa.select(attempts.c.run_id, attempts.c.started_at, attempts.c.finished_at)
                .order_by(attempts.c.id.desc())
                .limit(1)
            ).first()
        latest = list(self._read(rows))
        by_outcome: dict[str, int] = {o.value: 0 for o in Outcome}
        for a in latest:
            by_outcome[a.outcome.value] += 1
        return Summary(
            cells=len(latest),
            by_outcome=by_outcome,
            projects=len({a.project for a in latest}),
            attempts=int(total),
            failures=tuple(a for a in latest if a.outcome is Outcome.FAILED),
            last_run=last.run_id if last else None,
            last_activity=(last.finished_at or last.started_at) if last else None,
            corrupt=tuple(self.corrupt.values()),
        )
