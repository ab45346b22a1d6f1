"""How processes sharing a data folder learn about each other's changes (the change journal,
index_server/changes.py), and what an upload makes durable: the costs an upload must not grow back."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from support.projects import make_dummy_wheel

from index_server import changes, distfile
from index_server.catalog import GENERATION, Catalog, record_key
from index_server.storage import LocalStorage, StorageFull


def add(catalog: Catalog, tmp: Path, project: str, version: str) -> str:
    wheel = make_dummy_wheel(tmp / "wheels", project, version)
    with open(wheel, "rb") as fh:
        info = distfile.inspect(fh, wheel.name)
        sha256, size = distfile.hash_file(fh)
        catalog.add(info, fh, sha256, size)
    return wheel.name


def pair(tmp: Path) -> tuple[Catalog, Catalog]:
    writer, reader = Catalog(LocalStorage(tmp / "s")), Catalog(LocalStorage(tmp / "s"))
    writer.load()
    reader.load()
    return writer, reader


def names(catalog: Catalog, project: str) -> list[str]:
    found = catalog.project(project)
    return [f.filename for f in found.files] if found else []


def test_appends_land_at_the_end_and_follow_a_replacement(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        storage.append("log", b"x")
    storage.put_bytes("log", b"a\n")
    assert storage.append("log", b"b\n") == 4
    storage.put_bytes("log", b"new\n")  # replaced: later appends go to the new file
    assert storage.append("log", b"c\n") == 6
    assert storage.read_bytes("log") == b"new\nc\n"


def test_a_reader_reads_only_the_records_the_journal_names(tmp_path: Path) -> None:
    writer, reader = pair(tmp_path)
    for p in range(20):
        add(writer, tmp_path, f"proj-{p}", "1.0")
    reader.refresh()
    assert len(reader.projects()) == 20

    read: list[str] = []
    real = reader.storage.read_bytes
    reader.storage.read_bytes = lambda key: read.append(key) or real(key)  # type: ignore[method-assign]
    listed: list[str] = []
    real_list = reader.storage.list
    reader.storage.list = lambda prefix: listed.append(prefix) or real_list(prefix)  # type: ignore[method-assign]
    name = add(writer, tmp_path, "proj-7", "2.0")
    reader.refresh()
    assert read == [record_key("proj-7", name)] and listed == []
    assert names(reader, "proj-7")[-1] == name
    read.clear()
    reader.refresh()  # nothing new: no read at all
    assert read == []

    writer.set_yanked("proj-7", "1.0", "broken")
    reader.refresh()
    assert [f.yanked for f in reader.project("proj-7").files] == ["broken", None]  # type: ignore[union-attr]


def test_an_upload_does_not_make_the_farm_pages_look_again(tmp_path: Path) -> None:
    writer, reader = pair(tmp_path)
    before = reader.farm_generation
    add(writer, tmp_path, "proj", "1.0")
    reader.refresh()
    assert reader.farm_generation == before
    writer.farm_changed()
    reader.refresh()
    assert reader.farm_generation == before + 1


def test_readers_follow_a_new_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past LIMIT a writer starts a new epoch; a reader re-reads (the old way) and goes on."""
    monkeypatch.setattr(changes, "LIMIT", 200)
    writer, reader = pair(tmp_path)
    epochs = set()
    for v in range(12):
        add(writer, tmp_path, "rotating", f"1.{v}")
        epochs.add((tmp_path / "s" / GENERATION).read_bytes()[: changes.HEADER_LEN])
        if v % 3 == 0:
            reader.refresh()
    assert len(epochs) > 2
    reader.refresh()
    assert len(names(reader, "rotating")) == 12


def test_a_stamp_of_an_older_version_becomes_a_journal(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "s")
    storage.put_bytes(GENERATION, os.urandom(16).hex().encode())
    writer, reader = pair(tmp_path)
    assert storage.read_bytes(GENERATION).startswith(changes.MAGIC)
    add(writer, tmp_path, "proj", "1.0")
    reader.refresh()
    assert len(names(reader, "proj")) == 1


def test_a_full_disk_still_tells_the_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = pair(tmp_path)
    add(writer, tmp_path, "proj", "1.0")
    reader.refresh()

    def full(key: str, data: bytes) -> int:
        raise StorageFull("full")

    monkeypatch.setattr(writer.storage, "append", full)
    add(writer, tmp_path, "proj", "1.1")  # stored; the journal's header is rewritten in place
    assert (tmp_path / "s" / GENERATION).stat().st_size == changes.HEADER_LEN
    reader.refresh()
    assert len(names(reader, "proj")) == 2


def test_an_upload_syncs_its_file_and_metadata_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three fsyncs: the file, its .metadata, their folder. The record and the journal are not
    synced: a start after a power cut makes a record again from its file."""
    writer, _ = pair(tmp_path)
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    add(writer, tmp_path, "proj", "1.0")
    assert len(synced) == 3


def test_a_torn_record_is_made_again_at_start(tmp_path: Path) -> None:
    writer, _ = pair(tmp_path)
    name = add(writer, tmp_path, "proj", "1.0")
    good = writer.project("proj").files[0]  # type: ignore[union-attr]
    record = tmp_path / "s" / record_key("proj", name)
    record.write_bytes(b"")  # what a power cut can leave of a file renamed before its data hit disk
    fresh = Catalog(LocalStorage(tmp_path / "s"))
    fresh.load()
    again = fresh.project("proj").files[0]  # type: ignore[union-attr]
    assert (again.filename, again.sha256, again.metadata_sha256) == (
        good.filename,
        good.sha256,
        good.metadata_sha256,
    )
    assert io.BytesIO(record.read_bytes()).read()  # written again


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> str:
    """The SQL catalog's two dialects: SQLite (several statements in a transaction) and PostgreSQL
    (one statement publishes)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres").new_database()


def test_the_sql_catalog_refuses_another_spelling_through_another_host(
    tmp_path: Path, database: str
) -> None:
    """1.0 and 1.0.0 are one distribution: the second is refused even by a host whose copy of the
    catalog has not seen the first yet (the database's unique dist_key refuses it)."""
    from index_server.catalog_sql import SqlCatalog
    from index_server.storage import AlreadyExists

    a = SqlCatalog(LocalStorage(tmp_path / "s"), database)
    b = SqlCatalog(LocalStorage(tmp_path / "s"), database)
    a.load()
    b.load()
    first = add(a, tmp_path, "spelled", "1.0")
    with pytest.raises(AlreadyExists, match=first):
        add(b, tmp_path, "spelled", "1.0.0")
    # Its metadata is a row of the database, committed with the file's: no .metadata file.
    assert sorted(os.listdir(tmp_path / "s" / "files" / "spelled")) == [first]
    b.refresh(force=True)
    assert names(b, "spelled") == [first]
    record = b.project("spelled").files[0]  # type: ignore[union-attr]
    body = b.read_metadata(record)
    assert body is not None and b"Name: spelled" in body
    second = add(b, tmp_path, "spelled", "1.0.1")  # another version is another distribution
    a.refresh(force=True)
    assert names(a, "spelled") == [first, second]


def test_a_catalog_made_before_dist_key_gets_it_at_start(tmp_path: Path, database: str) -> None:
    """An index_files table without the dist_key column (an earlier wheelfarm's) is given the
    column, its values and the unique index when a host starts; the rule holds for old rows."""
    import sqlalchemy as sa

    from index_server.catalog_sql import SqlCatalog
    from index_server.storage import AlreadyExists

    old = SqlCatalog(LocalStorage(tmp_path / "s"), database)
    old.load()
    first = add(old, tmp_path, "older", "2.0")
    with old.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX index_files_dist_key"))
        conn.execute(sa.text("ALTER TABLE index_files DROP COLUMN dist_key"))
    new = SqlCatalog(LocalStorage(tmp_path / "s"), database)
    new.load()
    with new.engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT dist_key FROM index_files")).scalars().all()
    assert len(keys) == 1 and keys[0] and len(keys[0]) == 64
    with pytest.raises(AlreadyExists, match=first):
        add(new, tmp_path, "older", "2.0.0")


def sql_catalog(tmp: Path, storage: LocalStorage | None = None):
    from index_server.catalog_sql import SqlCatalog

    catalog = SqlCatalog(storage or LocalStorage(tmp / "s"), f"sqlite:///{tmp / 'catalog.db'}")
    catalog.load()
    return catalog


def test_the_sql_catalog_commits_nothing_when_the_file_cannot_be_stored(tmp_path: Path) -> None:
    """The row and the metadata are inserted while the file is stored; a failed store rolls
    them back, and its error is what the upload answers."""

    class Refusing(LocalStorage):
        def put_atomic(self, key, source, *, overwrite=True, durable=True):
            if key.startswith("files/"):
                raise StorageFull(f"{key}: no space left on device")
            super().put_atomic(key, source, overwrite=overwrite, durable=durable)

    import sqlalchemy as sa

    from index_server.catalog_sql import files_table, metadata_table

    catalog = sql_catalog(tmp_path, Refusing(tmp_path / "s"))
    with pytest.raises(StorageFull):
        add(catalog, tmp_path, "full", "1.0")
    with catalog.engine.connect() as conn:
        for table in (files_table, metadata_table):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    assert names(catalog, "full") == []


def test_the_sql_catalog_takes_the_file_back_when_the_commit_fails(tmp_path: Path) -> None:
    """The file is stored, then the database refuses the change (a real SQLite error, from a
    trigger): the file is deleted again, nothing is listed, the error is raised."""
    import sqlalchemy as sa

    catalog = sql_catalog(tmp_path)
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON index_projects "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
        add(catalog, tmp_path, "refused", "1.0")
    assert not (tmp_path / "s" / "files" / "refused").exists() or not os.listdir(
        tmp_path / "s" / "files" / "refused"
    )
    assert names(catalog, "refused") == []


def test_the_sql_catalog_serves_metadata_from_rows_and_from_older_objects(tmp_path: Path) -> None:
    """Metadata is a row committed with the file's; an index whose rows predate the metadata
    table has it as a `.metadata` object, which is read then, and only when its digest matches."""

    from index_server.catalog import file_key
    from index_server.catalog_sql import metadata_table

    catalog = sql_catalog(tmp_path)
    add(catalog, tmp_path, "meta", "1.0")
    record = catalog.project("meta").files[0]  # type: ignore[union-attr]
    body = catalog.read_metadata(record)
    assert body is not None and b"Name: meta" in body
    with catalog.engine.begin() as conn:
        conn.execute(metadata_table.delete())
    older = sql_catalog(tmp_path)  # a fresh process: nothing cached
    assert older.read_metadata(record) is None  # neither a row nor an object
    key = file_key(record.project, record.filename) + ".metadata"
    older.storage.put_bytes(key, b"Metadata-Version: 2.1\nName: other\n")
    assert older.read_metadata(record) is None  # not the bytes the catalog names
    older.storage.put_bytes(key, body)
    assert older.read_metadata(record) == body
