"""The small pure pieces of the index: storage keys and atomic writes, platform labels, filenames."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from index_server import distfile
from index_server.catalog import Catalog
from index_server.pages import describe_platform
from index_server.simple import accepts_gzip, negotiate
from index_server.storage import AlreadyExists, LocalStorage, StorageError


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("manylinux_2_17_aarch64", ("Linux", "aarch64")),
        ("manylinux2014_x86_64", ("Linux", "x86_64")),
        ("musllinux_1_2_aarch64", ("Linux (musl)", "aarch64")),
        ("linux_x86_64", ("Linux", "x86_64")),
        ("macosx_11_0_arm64", ("macOS", "arm64")),
        ("macosx_10_9_universal2", ("macOS", "universal2")),
        ("win_amd64", ("Windows", "x86_64")),
        ("win_arm64", ("Windows", "arm64")),
        ("any", ("any", "any")),
    ],
)
def test_platform_labels(platform: str, expected: tuple[str, str]) -> None:
    assert describe_platform(platform) == expected


def test_negotiation_edge_cases() -> None:
    assert negotiate("application/vnd.pypi.simple.v1+json;q=abc, text/html") == "text/html"
    assert negotiate("TEXT/HTML") == "text/html"
    assert negotiate("*/*;q=0") is None
    assert accepts_gzip("gzip, deflate")
    assert accepts_gzip("deflate, gzip;q=0.5")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip(None)


def test_storage_keys_cannot_escape(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    for key in ("../x", "a/../../x", "/abs", "a//b", "a\\b", ""):
        with pytest.raises(StorageError):
            storage.put_bytes(key, b"x")
    assert not (tmp_path / "x").exists()


def test_put_atomic_never_replaces_when_told_not_to(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("files/p/a.whl", b"first", overwrite=False)
    with pytest.raises(AlreadyExists):
        storage.put_atomic("files/p/a.whl", io.BytesIO(b"second"), overwrite=False)
    assert storage.read_bytes("files/p/a.whl") == b"first"
    assert storage.list("files/p") == ["a.whl"]  # no temporary file left behind


def test_filenames_are_parsed_with_packaging() -> None:
    name = distfile.parse_filename("Foo_Bar-1.0.post1-cp311-cp311-manylinux_2_17_aarch64.whl")
    assert (name.project, str(name.version), name.kind) == ("foo-bar", "1.0.post1", "wheel")
    assert distfile.parse_filename("foo_bar-2.0.tar.gz").kind == "sdist"
    with pytest.raises(distfile.InvalidDistribution):
        distfile.parse_filename("foo_bar.tar.gz")  # no version


def test_a_second_catalog_sees_changes_within_one_clock_tick(tmp_path: Path) -> None:
    """Two processes' catalogs over one folder: changes made back to back (same mtime tick) are
    all seen, not only the first."""
    from support.projects import make_dummy_wheel

    writer, reader = Catalog(LocalStorage(tmp_path / "s")), Catalog(LocalStorage(tmp_path / "s"))
    writer.load()
    reader.load()
    for minor in range(5):
        wheel = make_dummy_wheel(tmp_path / "w", "ticks", f"1.{minor}")
        with open(wheel, "rb") as fh:
            info = distfile.inspect(fh, wheel.name)
            sha256, size = distfile.hash_file(fh)
            writer.add(info, fh, sha256, size)
        reader.refresh()
        assert len(reader.project("ticks").files) == minor + 1  # type: ignore[union-attr]
    writer.set_yanked("ticks", "1.0", "bad")
    writer.set_yanked("ticks", "1.1", "bad")
    reader.refresh()
    assert [f.yanked for f in reader.project("ticks").files][:3] == ["bad", "bad", None]  # type: ignore[union-attr]
    time.sleep(0)  # nothing timing-dependent is asserted beyond "immediately"


def test_a_wheel_with_too_many_entries_is_refused_before_zipfile_reads_them() -> None:
    """A million empty entries took a worker to 550 MB; the central directory is bounded first."""
    import io
    import zipfile

    from builder.check import ziplimits

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("many_entries-1.0.dist-info/METADATA", "Name: many-entries\nVersion: 1.0\n")
        for i in range(ziplimits.MAX_ENTRIES):
            zf.writestr(f"e/{i}", b"")
    with pytest.raises(distfile.InvalidDistribution, match=r"entries; the limit is 100000"):
        distfile.inspect(buf, "many_entries-1.0-py3-none-any.whl")


def test_tokens_and_farm_status_move_into_a_database_once(tmp_path: Path):
    """An index given --database imports the tokens and the status document its storage held, once:
    what is revoked afterwards stays revoked when the next host starts."""
    from index_server.auth import TokenStore
    from index_server.auth_sql import SqlTokenStore
    from index_server.farm import StatusStore
    from index_server.farm_sql import SqlStatusStore

    storage = LocalStorage(tmp_path / "data")
    old, secret = TokenStore(storage).create("ci")
    StatusStore(storage).write(b'{"generated": "before"}')
    url = f"sqlite:///{tmp_path / 'index.db'}"
    tokens = SqlTokenStore(storage, url)
    assert tokens.check(secret) == old
    status = SqlStatusStore(storage, url)
    assert status.read() == b'{"generated": "before"}'
    status.write(b'{"generated": "after"}')
    tokens.revoke("ci")
    new, new_secret = tokens.create("laptop", "read")
    # A second host (or a restart): nothing is imported again.
    again = SqlTokenStore(storage, url)
    assert again.check(secret) is None and again.check(new_secret) == new
    assert [t.name for t in again.tokens()] == ["laptop"]
    assert SqlStatusStore(storage, url).read() == b'{"generated": "after"}'
    # The storage keeps what it had; nothing is written there any more.
    assert [t.name for t in TokenStore(storage).tokens()] == ["ci"]
    assert StatusStore(storage).read() == b'{"generated": "before"}'
