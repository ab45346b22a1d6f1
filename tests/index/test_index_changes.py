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


def test_the_sql_catalog_refuses_another_spelling_through_another_host(tmp_path: Path) -> None:
    """1.0 and 1.0.0 are one distribution: the second is refused even by a host whose copy of the
    catalog has not seen the first yet (the check runs inside the insert, under the writers' lock)."""
    from index_server.catalog_sql import SqlCatalog
    from index_server.storage import AlreadyExists

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    a = SqlCatalog(LocalStorage(tmp_path / "s"), url)
    b = SqlCatalog(LocalStorage(tmp_path / "s"), url)
    a.load()
    b.load()
    first = add(a, tmp_path, "spelled", "1.0")
    with pytest.raises(AlreadyExists):
        add(b, tmp_path, "spelled", "1.0.0")
    assert sorted(os.listdir(tmp_path / "s" / "files" / "spelled")) == [first, first + ".metadata"]
    b.refresh(force=True)
    assert names(b, "spelled") == [first]
