"""The catalog's records in a SQL database (PostgreSQL for several hosts; SQLite works too), with
SQLAlchemy Core: `--database postgresql://...` (WHEELFARM_INDEX_DATABASE).

The files stay in the Storage; what publishes a file is its row in `index_files`, committed with its
wheel's PEP 658 metadata (`index_metadata`: small, read by every resolver, no object of its own).
Every change runs in one transaction that first increments the single row of `index_generation`
(the row lock orders writers) and stamps the changed project with the new value in
`index_projects`. A host learns about changes with one cheap query per request (`SELECT value FROM
index_generation`), then reads only the projects stamped after the generation it had: never the
whole catalog. Tokens (index_server/auth_sql.py) and the farm status (farm_sql.py) are in the same
database; build logs and provenance, bytes like the files, stay in the Storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime

import sqlalchemy as sa
from packaging.utils import NormalizedName, canonicalize_name
from sqlalchemy.engine import Connection

from index_server import distfile
from index_server.catalog import (
    Catalog,
    FileRecord,
    Project,
    file_key,
    file_order,
    now_iso,
    selected_files,
)
from index_server.changes import FARM
from index_server.database import CHECK_EVERY, create_tables, engine_for, engine_url, metadata
from index_server.storage import AlreadyExists, Storage, StorageError

log = logging.getLogger(__name__)

files_table = sa.Table(
    "index_files",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("filename", sa.String(400), primary_key=True),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("upload_time", sa.String(40), nullable=False),
    sa.Column("requires_python", sa.Text),
    sa.Column("metadata_sha256", sa.String(64)),
    sa.Column("yanked", sa.Text),
    sa.Column("summary", sa.Text),
    # What makes two filenames one distribution (1.0 / 1.0.0, Foo_Bar / foo.bar): unique per
    # project, so the database itself refuses the second spelling (dist_digest).
    sa.Column("dist_key", sa.String(64)),
    sa.Index("index_files_dist_key", "project", "dist_key", unique=True),
)
projects_table = sa.Table(
    "index_projects",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("changed", sa.BigInteger, nullable=False, index=True),
)
generation_table = sa.Table(
    "index_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
# A wheel's METADATA, committed with its file's row. An index whose rows predate this table keeps
# its `.metadata` objects in the Storage, which read_metadata falls back to.
metadata_table = sa.Table(
    "index_metadata",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("filename", sa.String(400), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)
FIELDS = [f.name for f in fields(FileRecord)]
METADATA_CACHE = 4096  # wheels whose metadata a process keeps (a few KB each; immutable)


class SqlCatalog(Catalog):
    def __init__(self, storage: Storage, url: str) -> None:
        super().__init__(storage)
        self._journal = None  # changes are announced in the database (index_generation)
        self.url = engine_url(url)
        self.engine = engine_for(url)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._seen = -1  # the generation whose changes this process has read
        self._metadata: OrderedDict[str, bytes] = OrderedDict()  # metadata_sha256 -> body
        self._checked = 0.0  # when the change counter was last asked
        self._create()

    def _create(self) -> None:
        create_tables(self.engine)
        _add_dist_keys(self.engine)
        for attempt in range(3):  # two hosts starting at once may both insert the row
            try:
                with self.engine.begin() as conn:
                    if conn.execute(sa.select(generation_table.c.value)).first() is None:
                        conn.execute(generation_table.insert().values(id=1, value=0))
                return
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise

    # -- reading ----------------------------------------------------------------------------
    def _current(self, conn: Connection) -> int:
        return conn.execute(
            sa.select(generation_table.c.value).where(generation_table.c.id == 1)
        ).scalar_one()

    def _read(self, conn: Connection, names: list[str] | None) -> dict[str, Project]:
        query = sa.select(files_table)
        if names is not None:
            query = query.where(files_table.c.project.in_(names))
        grouped: dict[str, list[FileRecord]] = {n: [] for n in names or []}
        for row in conn.execute(query):
            data = row._mapping
            grouped.setdefault(data["project"], []).append(
                FileRecord(**{k: data[k] for k in FIELDS})
            )
        out = {}
        for name, records in grouped.items():
            records.sort(key=file_order)
            out[name] = Project(NormalizedName(name), tuple(records))
        return out

    def load(self) -> None:
        with self._lock:
            self.storage.sweep_partials()
            self._reconcile()
            with self.engine.connect() as conn:
                self._seen = self._current(conn)
                self._projects = {n: p for n, p in self._read(conn, None).items() if p.files}
            self._generation = self._seen
            self.version += 1
            self.farm_generation += 1

    def refresh(self, *, force: bool = False) -> None:
        """Read what other hosts changed. The change counter is asked at most every CHECK_EVERY
        seconds per process (a request costs no query); this process's own writes force it."""
        now = time.monotonic()
        if not force and now - self._checked < CHECK_EVERY:
            return
        self._checked = now
        with self.engine.connect() as conn:
            current = self._current(conn)
            if current == self._seen:
                return
            with self._lock:
                if current == self._seen:
                    return
                names = [
                    r[0]
                    for r in conn.execute(
                        sa.select(projects_table.c.name).where(
                            projects_table.c.changed > self._seen
                        )
                    )
                ]
                if FARM in names or not names:  # the farm's data, or a change of anything
                    self.farm_generation += 1
                names = [n for n in names if n != FARM]
                for name, project in self._read(conn, names).items():
                    if project.files:
                        self._projects[name] = project
                    else:
                        self._projects.pop(name, None)
                self._seen = current
                self._generation = current
                self.version += 1

    def known_conflict(self, name: distfile.DistName) -> FileRecord | None:
        """The early check, before anything is stored: this process's copy of the catalog (at most
        CHECK_EVERY old; no round trip). What it misses is caught exactly when the upload is stored:
        the conditional PUT of the file, then the insert (_insert: the unique filename and dist_key)."""
        self.refresh()
        project = self.project(name.project)
        for f in project.files if project else ():
            if f.filename == name.filename or distfile.dist_key(f.filename) == name.key:
                return f
        return None

    def conflict(self, name: distfile.DistName) -> FileRecord | None:
        """The stored file an upload of `name` duplicates: the database's rows (the same filename
        or the same distribution spelled otherwise), else a file in the bucket without a row."""
        with self.engine.connect() as conn:
            found = _same_in(conn, name)
            row = None
            if found is not None:
                row = conn.execute(
                    sa.select(files_table).where(
                        files_table.c.project == name.project, files_table.c.filename == found
                    )
                ).first()
        if row is None:
            return self.existing(name.project, name.filename)
        return FileRecord(**{k: row._mapping[k] for k in FIELDS})

    def existing(self, project: str, filename: str) -> FileRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(files_table).where(
                    files_table.c.project == project, files_table.c.filename == filename
                )
            ).first()
        if row is not None:
            return FileRecord(**{k: row._mapping[k] for k in FIELDS})
        key = file_key(project, filename)
        if not self.storage.exists(key):
            return None
        with self.storage.open(key) as fh:  # stored, not recorded: an upload in flight or cut short
            sha256, size = distfile.hash_file(fh)
        return FileRecord(NormalizedName(project), filename, "0", sha256, size, "")

    # -- writing ----------------------------------------------------------------------------
    def _change(self, conn: Connection, projects: set[str]) -> int:
        """Take the next generation (holding its row lock until the transaction ends) and stamp
        `projects` with it. On PostgreSQL one statement (one round trip) does both."""
        if projects and conn.dialect.name == "postgresql":
            return max(conn.execute(_CHANGE_PG, {"names": sorted(projects)}).scalars())
        generation = conn.execute(
            generation_table.update()
            .where(generation_table.c.id == 1)
            .values(value=generation_table.c.value + 1)
            .returning(generation_table.c.value)
        ).scalar_one()
        for name in projects:
            updated = conn.execute(
                projects_table.update()
                .where(projects_table.c.name == name)
                .values(changed=generation)
            ).rowcount
            if not updated:
                conn.execute(projects_table.insert().values(name=name, changed=generation))
        return generation

    def _insert(self, record: FileRecord, body: bytes | None) -> int:
        """Insert the row (which publishes the file) and its metadata, and take the next generation,
        in one transaction; returns the generation. IntegrityError when a row has the filename or is
        the same distribution (the unique dist_key): the database decides, so no upload through
        another host can slip in between. On PostgreSQL one statement in autocommit mode: one round
        trip, and the generation's row lock is held for that statement only."""
        values = asdict(record) | {"dist_key": dist_digest(record.filename)}
        if self.engine.dialect.name == "postgresql":
            meta = {"body": body} if body is not None else {}
            with self._autocommit.connect() as conn:
                return conn.execute(_PUBLISH_PG[body is not None], values | meta).scalar_one()
        with self.engine.begin() as conn:
            generation = self._change(conn, {record.project})
            conn.execute(files_table.insert().values(**values))
            if body is not None:
                conn.execute(
                    metadata_table.insert().values(
                        project=record.project, filename=record.filename, body=body
                    )
                )
        return generation

    def _sync_file(self, record: FileRecord) -> None:
        self.storage.sync([file_key(record.project, record.filename)])  # its metadata is a row

    def read_metadata(self, record: FileRecord) -> bytes | None:
        """From the database (kept here by digest, LRU), else the Storage's `.metadata` object of
        an index that predates the metadata table."""
        digest = record.metadata_sha256
        if not digest:
            return None
        with self._lock:
            body = self._metadata.get(digest)
            if body is not None:
                self._metadata.move_to_end(digest)
                return body
        with self.engine.connect() as conn:
            body = conn.execute(
                sa.select(metadata_table.c.body).where(
                    metadata_table.c.project == record.project,
                    metadata_table.c.filename == record.filename,
                )
            ).scalar()
        if body is None:
            body = super().read_metadata(record)
        if body is None or hashlib.sha256(body).hexdigest() != digest:
            return None
        with self._lock:
            self._metadata[digest] = bytes(body)
            while len(self._metadata) > METADATA_CACHE:
                self._metadata.popitem(last=False)
        return bytes(body)

    def _bump(self) -> None:
        with self.engine.begin() as conn:
            self._change(conn, set())

    def _reconcile(self) -> None:
        """Record stored files that have no row (a host killed between storing and recording), and
        drop rows whose file is gone."""
        with self.engine.connect() as conn:
            rows = {
                (r[0], r[1])
                for r in conn.execute(sa.select(files_table.c.project, files_table.c.filename))
            }
        stored = {
            (project, filename)
            for project, filename in self.storage.list_two_levels("files")
            if not filename.endswith(".metadata")
        }
        for project, filename in sorted(stored - rows):
            try:
                self._record_existing(NormalizedName(project), filename)
            except (
                distfile.InvalidDistribution,
                OSError,
                StorageError,
                sa.exc.IntegrityError,
            ) as exc:
                log.warning("ignoring stored file %s/%s: %s", project, filename, exc)
        gone = rows - stored
        if gone:
            with self.engine.begin() as conn:
                self._change(conn, {p for p, _ in gone})
                for project, filename in gone:
                    for table in (files_table, metadata_table):
                        conn.execute(
                            table.delete().where(
                                table.c.project == project, table.c.filename == filename
                            )
                        )

    def _record_existing(self, project: NormalizedName, filename: str) -> None:
        with self.storage.open(file_key(project, filename)) as fh:
            info = distfile.inspect(fh, filename)
            sha256, size = distfile.hash_file(fh)
        st = self.storage.stat(file_key(project, filename))
        when = datetime.fromtimestamp((st.mtime_ns if st else 0) / 1e9, UTC)
        record = self._make_record(info, sha256, size, when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self._insert(record, info.metadata if record.metadata_sha256 else None)

    def add(
        self, info: distfile.DistInfo, fh, sha256: str, size: int, *, notify: bool = True
    ) -> FileRecord:
        """Store the file (first writer wins), then commit its row and metadata, which publishes it."""
        record = self._make_record(info, sha256, size, now_iso())
        key = file_key(record.project, record.filename)
        fh.seek(0)
        # A put that fails or finds the name taken (AlreadyExists) leaves nothing of ours.
        self.storage.put_atomic(key, fh, overwrite=False, durable=False)
        generation = None
        try:
            self._sync_file(record)
            generation = self._insert(record, info.metadata if record.metadata_sha256 else None)
        except BaseException as exc:
            # Our file is stored. A row of its name with its digest is a record of our file (a
            # reconcile's, or another worker's existing()): published. Anything else takes it back.
            if not (isinstance(exc, sa.exc.IntegrityError) and self._recorded(record.project, key)):
                with contextlib.suppress(StorageError, OSError):
                    self.storage.delete(key)
                if isinstance(exc, sa.exc.IntegrityError):
                    with self.engine.connect() as conn:
                        clash = _same_in(conn, info.name)
                    if clash is not None:
                        raise AlreadyExists(file_key(record.project, clash)) from None
                raise
        if notify:
            self._published(record, generation)
        return record

    def _recorded(self, project: str, key: str) -> bool:
        """Whether the row of the file stored under `key` exists and names the stored bytes."""
        filename = key.rsplit("/", 1)[1]
        with self.engine.connect() as conn:
            digest = conn.execute(
                sa.select(files_table.c.sha256).where(
                    files_table.c.project == project, files_table.c.filename == filename
                )
            ).scalar()
        if digest is None:
            return False
        with self.storage.open(key) as fh:
            return distfile.hash_file(fh)[0] == digest

    def _published(self, record: FileRecord, generation: int | None) -> None:
        """Show our own upload at once: when nothing else changed since this process last read
        (the row made the very next generation), without asking the database again."""
        with self._lock:
            if generation is not None and generation == self._seen + 1:
                old = self._projects.get(record.project)
                files = [f for f in (old.files if old else ()) if f.filename != record.filename]
                files.append(record)
                files.sort(key=file_order)
                self._projects[record.project] = Project(record.project, tuple(files))
                self._seen = self._generation = generation
                self.version += 1
                return
        self.refresh(force=True)

    def notify(self) -> None:
        self._bump()
        self.refresh(force=True)

    def farm_changed(self) -> None:
        with self.engine.begin() as conn:
            self._change(conn, {FARM})
        self.refresh(force=True)

    def set_yanked(self, project: str, selector: str, reason: str | None) -> list[FileRecord]:
        name = canonicalize_name(project)
        self.refresh(force=True)
        matches = selected_files(self.project(name), name, selector)
        changed = [replace(f, yanked=reason) for f in matches]
        with self.engine.begin() as conn:  # all of them or none
            self._change(conn, {name})
            for f in changed:
                conn.execute(
                    files_table.update()
                    .where(files_table.c.project == f.project, files_table.c.filename == f.filename)
                    .values(yanked=reason)
                )
        self.refresh(force=True)
        return changed


# The generation's UPDATE runs first (a data-modifying CTE runs exactly once, before the outer
# statement reads its result), so its row lock orders writers as in the two-statement form.
_CHANGE_PG = sa.text(
    "WITH g AS (UPDATE index_generation SET value = value + 1 WHERE id = 1 RETURNING value) "
    "INSERT INTO index_projects (name, changed) "
    "SELECT n, g.value FROM g, unnest(CAST(:names AS text[])) AS n "
    "ON CONFLICT (name) DO UPDATE SET changed = excluded.changed "
    "RETURNING changed"
)


_FILE_COLUMNS = [*FIELDS, "dist_key"]


def _publish_pg(with_metadata: bool) -> sa.TextClause:
    """The whole publication as one statement: the next generation (its row lock orders writers),
    the project's stamp, the file's row and its metadata's. Every data-modifying CTE runs exactly
    once, read or not; a unique violation (filename, dist_key) fails all of it."""
    meta = (
        ", m AS (INSERT INTO index_metadata (project, filename, body) "
        "VALUES (:project, :filename, :body))"
        if with_metadata
        else ""
    )
    return sa.text(
        "WITH g AS (UPDATE index_generation SET value = value + 1 WHERE id = 1 RETURNING value), "
        "p AS (INSERT INTO index_projects (name, changed) SELECT :project, value FROM g "
        "ON CONFLICT (name) DO UPDATE SET changed = excluded.changed), "
        f"f AS (INSERT INTO index_files ({', '.join(_FILE_COLUMNS)}) "
        f"VALUES ({', '.join(':' + c for c in _FILE_COLUMNS)})){meta} "
        "SELECT value FROM g"
    )


_PUBLISH_PG = {False: _publish_pg(False), True: _publish_pg(True)}


def _same_in(conn: Connection, name: distfile.DistName) -> str | None:
    """The stored filename (a row) that an upload of `name` duplicates: the same filename, or the
    same distribution under another spelling (the same dist_key)."""
    found = [
        r[0]
        for r in conn.execute(
            sa.select(files_table.c.filename).where(
                files_table.c.project == name.project,
                sa.or_(
                    files_table.c.filename == name.filename,
                    files_table.c.dist_key == dist_digest(name.filename),
                ),
            )
        )
    ]
    return name.filename if name.filename in found else next(iter(found), None)


def dist_digest(filename: str) -> str | None:
    """sha256 of what makes `filename` one distribution (distfile.DistName.key: kind, version,
    build, tags) in a canonical text form; None for a filename that does not parse."""
    key = distfile.dist_key(filename)
    if key is None:
        return None

    def canonical(part: object) -> object:
        if isinstance(part, (set, frozenset)):
            return sorted(str(p) for p in part)
        if isinstance(part, (tuple, list)):
            return [canonical(p) for p in part]
        return str(part)

    return hashlib.sha256(json.dumps(canonical(key)).encode()).hexdigest()


def _add_dist_keys(engine: sa.Engine) -> None:
    """Give an index_files table made before dist_key its column, its values and its unique
    index. Hosts starting at once: one migrates, the others find it done."""
    for attempt in range(3):
        columns = {c["name"] for c in sa.inspect(engine).get_columns("index_files")}
        if "dist_key" in columns:
            return
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE index_files ADD COLUMN dist_key VARCHAR(64)"))
                rows = conn.execute(sa.select(files_table.c.project, files_table.c.filename))
                for project, filename in rows.all():
                    conn.execute(
                        files_table.update()
                        .where(files_table.c.project == project, files_table.c.filename == filename)
                        .values(dist_key=dist_digest(filename))
                    )
                next(i for i in files_table.indexes if i.name == "index_files_dist_key").create(
                    conn
                )
            log.info("index_files: added dist_key to %s", engine.url.render_as_string())
            return
        except sa.exc.SQLAlchemyError:
            if attempt == 2:
                raise


def catalog_for(storage: Storage, database: str | None) -> Catalog:
    """The SQL catalog when a database URL is given, else the records-in-storage default."""
    return SqlCatalog(storage, database) if database else Catalog(storage)


__all__ = ["SqlCatalog", "catalog_for", "engine_url"]
