"""The index's SQL database (`--database postgresql://...`, WHEELFARM_INDEX_DATABASE; SQLite works
too): one SQLAlchemy engine per URL and process, shared by the catalog (index_server/catalog_sql.py),
the tokens (auth_sql.py) and the farm status (farm_sql.py), and the one-time import of what an index
kept in its Storage before it was given a database."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from index_server.storage import StorageError

# How long a process trusts its copy of what the database holds (the change counter, the tokens):
# a change through another host is seen here within this, this process's own changes at once.
CHECK_EVERY = 0.1

metadata = sa.MetaData()
# What was imported from the Storage (one row per kind: "tokens", "farm-status"), so that an import
# happens once per database and never brings back what was since removed.
imports_table = sa.Table(
    "index_imports",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
)


def engine_url(url: str) -> str:
    """SQLAlchemy's URL for a postgresql:// URL (the psycopg 3 driver) or a sqlite: URL."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+", "sqlite:")):
        return url
    raise StorageError(f"--database {url!r}: give postgresql://... (or sqlite:///PATH)")


@functools.cache
def engine_for(url: str) -> Engine:
    """The process's engine (and connection pool) for `url`; every store of the index shares it."""
    # No pre-ping: a dead connection fails the query, which the next request retries anew.
    return sa.create_engine(engine_url(url), pool_recycle=300, pool_size=8)


def create_tables(engine: Engine) -> None:
    """Create the index's tables that are missing. Several hosts may start at once: creating the same
    tables concurrently can fail in one of them (a unique violation in the system catalog); the
    tables are there then, so try again."""
    for attempt in range(3):
        try:
            metadata.create_all(engine)
            return
        except sa.exc.SQLAlchemyError:
            if attempt == 2:
                raise


def import_once(engine: Engine, name: str, rows: list[tuple[sa.Table, dict]]) -> bool:
    """Insert `rows` (what the Storage held) unless this database already imported `name`; one
    transaction, so of two hosts importing at once exactly one does. True when this one did."""
    try:
        with engine.begin() as conn:
            if conn.execute(
                sa.select(imports_table.c.name).where(imports_table.c.name == name)
            ).first():
                return False
            conn.execute(imports_table.insert().values(name=name))
            for table, values in rows:
                conn.execute(table.insert().values(**values))
    except sa.exc.IntegrityError:  # another host imported it meanwhile
        return False
    return True
