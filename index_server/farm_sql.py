"""The farm's status document in the index's SQL database (`--database`): one row, replaced whole in
one transaction, read by every host (index_server/farm.py notices a change through the catalog's
change counter, then asks for the row's digest). Build logs and provenance stay in the Storage.

A status document the Storage held before the index was given a database is imported once.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from index_server.catalog import now_iso
from index_server.database import create_tables, engine_for, import_once, metadata
from index_server.farm import StatusStore
from index_server.storage import Storage

status_table = sa.Table(
    "index_farm_status",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1: there is one document
    sa.Column("document", sa.LargeBinary, nullable=False),  # as pushed, byte for byte
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("stored", sa.String(40), nullable=False),
)


class SqlStatusStore(StatusStore):
    def __init__(self, storage: Storage, url: str) -> None:
        super().__init__(storage)
        self.engine = engine_for(url)
        create_tables(self.engine)
        old = super().read()
        import_once(self.engine, "farm-status", [(status_table, self._row(old))] if old else [])

    @staticmethod
    def _row(data: bytes) -> dict:
        return {"id": 1, "document": data, "sha256": hashlib.sha256(data).hexdigest(),
                "stored": now_iso()}  # fmt: skip

    def stamp(self) -> object | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(status_table.c.sha256)).scalar()

    def read(self) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(status_table.c.document)).scalar()

    def write(self, data: bytes) -> None:
        row = self._row(data)
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    updated = conn.execute(
                        status_table.update().where(status_table.c.id == 1).values(**row)
                    ).rowcount
                    if not updated:
                        conn.execute(status_table.insert().values(**row))
                return
            except sa.exc.IntegrityError:  # the first document, inserted by two hosts at once
                if attempt:
                    raise


def status_store_for(storage: Storage, database: str | None) -> StatusStore:
    """The status document in the database when one is given, else in the Storage."""
    return SqlStatusStore(storage, database) if database else StatusStore(storage)


__all__ = ["SqlStatusStore", "status_store_for"]
