"""The S3 storage against a real S3-compatible server (SeaweedFS, started for the session), and two
`wheelfarm serve` hosts on the same bucket: uploads through one listed by the other, the same filename
raced through both (exactly one wins), a yank seen across hosts, a host killed with SIGKILL mid-upload
(nothing half-published, the other keeps serving), and pip and uv installing through both."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from support.index_server import Dists, Server, free_port, twine_upload
from support.projects import make_wheel
from support.seaweedfs import SeaweedFS

from index_server.auth import TokenStore
from index_server.storage import AlreadyExists, StorageError
from index_server.storage_s3 import S3Storage, parse_s3_url

BUCKET = "wheelfarm-test"


@pytest.fixture
def store(seaweedfs: SeaweedFS) -> S3Storage:
    storage = S3Storage(f"s3://{BUCKET}/unit-{uuid.uuid4().hex[:8]}", client=seaweedfs.client())
    storage.ensure_bucket()
    return storage


def test_urls_name_bucket_and_prefix():
    assert parse_s3_url("s3://b/some/prefix/") == ("b", "some/prefix/")
    assert parse_s3_url("s3://b") == ("b", "")
    for bad in ("http://b/x", "s3:///x", "s3://b/../x"):
        with pytest.raises(StorageError):
            parse_s3_url(bad)


def test_storage_contract(store: S3Storage):
    assert store.list("") == [] and store.stat("records/x") is None
    store.put_bytes("files/p/a.whl", b"A" * 10)
    store.put_bytes("files/p/b.whl", b"B")
    store.put_bytes("records/p/a.whl.json", b"{}")
    assert store.list("") == ["files", "records"]
    assert store.list("files/p") == ["a.whl", "b.whl"]
    store.put_bytes("files/q/c.whl", b"C")
    # One flat listing, the same answer as list() folder by folder (the storage's default).
    assert store.list_two_levels("files") == [("p", "a.whl"), ("p", "b.whl"), ("q", "c.whl")]
    assert store.list_two_levels("files") == super(S3Storage, store).list_two_levels("files")
    store.delete("files/q/c.whl")
    assert store.read_bytes("files/p/a.whl") == b"A" * 10
    assert store.exists("files/p/b.whl") and not store.exists("files/p/c.whl")
    assert store.stat("files/p/a.whl").size == 10
    with pytest.raises(FileNotFoundError):
        store.open("files/p/c.whl")
    # A folder's stamp changes whenever a key directly under it is added or removed.
    before = store.stat("records/p")
    assert before is not None and before.mtime_ns > 0
    store.put_bytes("records/p/b.whl.json", b"{}")
    added = store.stat("records/p")
    store.delete("records/p/b.whl.json")
    removed = store.stat("records/p")
    assert before.mtime_ns < added.mtime_ns < removed.mtime_ns
    assert store.list("records/p") == ["a.whl.json"]
    with pytest.raises(StorageError):
        store.put_bytes("../escape", b"x")


def test_first_writer_wins_among_concurrent_writers(store: S3Storage):
    def put(i: int) -> int | None:
        try:
            store.put_bytes("files/race/x.whl", f"writer {i}".encode(), overwrite=False)
            return i
        except AlreadyExists:
            return None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(put, range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert store.read_bytes("files/race/x.whl") == f"writer {winners[0]}".encode()


def test_a_failed_upload_leaves_nothing(store: S3Storage):
    class Broken(io.RawIOBase):
        """A source that fails after 1 MB, as a client connection that drops."""

        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            if self.sent >= 1 << 20:
                raise ConnectionResetError("client went away")
            n = min(len(buf), 64 << 10)
            buf[:n] = b"x" * n
            self.sent += n
            return n

    with pytest.raises((ConnectionResetError, StorageError)):
        store.put_atomic("files/p/broken.whl", io.BufferedReader(Broken()), overwrite=False)
    assert not store.exists("files/p/broken.whl")
    assert store.list("files/p") == []


def test_small_bodies_go_at_once_large_ones_wait_for_100_continue(store: S3Storage):
    """botocore sends a file-like body with `Expect: 100-continue` (a round trip to the store
    before the body): a small upload is PUT as bytes, without it; a large one keeps it (the store
    can refuse a taken name before the body is sent). Both arrive whole, from a seekable source
    read from its current position and from a stream that cannot seek."""
    from index_server.storage_s3 import SMALL_PUT

    sent: list[tuple[str, bytes | None]] = []

    def record(request, **_):
        sent.append((request.url.rsplit("/", 1)[1], request.headers.get("Expect")))

    store.client.meta.events.register("before-send.s3.PutObject", record)

    class Stream(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            chunk = self.data.read(min(len(buf), 1 << 16))
            buf[: len(chunk)] = chunk
            return len(chunk)

    small, large = b"s" * 1000, os.urandom(SMALL_PUT + 5000)
    seekable = io.BytesIO(b"skipped" + large)
    seekable.seek(len(b"skipped"))
    cases = {
        "small.whl": io.BytesIO(small),
        "large.whl": seekable,
        "stream.whl": io.BufferedReader(Stream(large)),  # type: ignore[arg-type]
    }
    for name, source in cases.items():
        store.put_atomic(f"files/p/{name}", source, overwrite=False)
    assert dict(sent) == {
        "small.whl": None,
        "large.whl": b"100-continue",
        "stream.whl": b"100-continue",
    }
    assert store.read_bytes("files/p/small.whl") == small
    assert store.read_bytes("files/p/large.whl") == large
    assert store.read_bytes("files/p/stream.whl") == large
    with pytest.raises(AlreadyExists):
        store.put_atomic("files/p/small.whl", io.BytesIO(b"other"), overwrite=False)


BUMP = """
import sys
from index_server.storage_s3 import S3Storage
store = S3Storage(sys.argv[1])
for _ in range(8):
    with store.locked("counter"):
        value = int(store.read_bytes("counter"))
        store.put_bytes("counter", str(value + 1).encode())
"""


def test_locked_excludes_across_hosts(seaweedfs: SeaweedFS):
    """Three processes (three hosts, as far as the bucket can tell) increment one object under the
    lock: no increment is lost (without the lock, most are)."""
    url = f"s3://{BUCKET}/lock-{uuid.uuid4().hex[:8]}"
    store = S3Storage(url, client=seaweedfs.client())
    store.ensure_bucket()
    store.put_bytes("counter", b"0")
    env = os.environ | seaweedfs.env()
    procs = [
        subprocess.Popen([sys.executable, "-c", BUMP, url], env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    assert store.read_bytes("counter") == b"24"
    assert store.list("") == ["counter"]  # released locks leave nothing; .locks is not listed


def test_a_lock_is_renewed_while_held_and_taken_over_when_its_holder_is_killed(
    seaweedfs: SeaweedFS, tmp_path: Path
):
    url = f"s3://{BUCKET}/lease-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from index_server.storage_s3 import S3Storage\n"
            f"store = S3Storage({url!r}, lock_lease=1.5)\n"
            "store.ensure_bucket()\n"
            "with store.locked('tokens'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, env=os.environ | seaweedfs.env(), start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == b"held\n"
        # Held for well over its 1.5 s lease: renewed, so a waiter gives up.
        waiter = S3Storage(url, client=seaweedfs.client(), lock_lease=1.5, lock_wait=4)
        with pytest.raises(StorageError, match="still held after 4 s"), waiter.locked("tokens"):
            pass
        holder.kill()  # SIGKILL: no release, no more renewals
        holder.wait()
        start = time.monotonic()
        waiter.lock_wait = 30
        with waiter.locked("tokens"):
            taken = time.monotonic() - start
        assert taken < 6, taken  # the lease (1.5 s) plus the store's one-second clock
        assert waiter.list("") == []  # released
    finally:
        holder.kill()
        holder.wait()


def test_downloads_redirect_to_a_presigned_url(seaweedfs: SeaweedFS):
    storage = S3Storage(f"s3://{BUCKET}/presign", client=seaweedfs.client(), downloads="redirect")
    storage.ensure_bucket()
    storage.put_bytes("files/p/a.whl", b"wheel bytes")
    url = storage.download_url("files/p/a.whl")
    assert url and url.startswith(seaweedfs.endpoint) and "Signature" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"wheel bytes"
    assert S3Storage(f"s3://{BUCKET}/x", client=seaweedfs.client()).download_url("k") is None


# -- several hosts -----------------------------------------------------------------------------


def start_host(
    tmp: Path, sw: SeaweedFS, url: str, downloads: str = "stream", database: str | None = None
) -> Server:
    port = free_port()
    data = tmp / f"host-{port}"  # unused by the S3 layout; each host would be its own machine
    data.mkdir()
    env = os.environ | sw.env() | {"WHEELFARM_S3_DOWNLOADS": downloads}
    cmd = ["wheelfarm", "serve", "--data", str(data), "--port", str(port), "--workers", "2",
           "--storage", url, *(["--database", database] if database else [])]  # fmt: skip
    log = open(tmp / f"host-{port}.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    server = Server(data, port, proc)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp / f"host-{port}.log").read_text()
        try:
            urllib.request.urlopen(server.url + "/simple/", timeout=2).close()
            return server
        except OSError:
            assert time.monotonic() < deadline, "host did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module", params=["records-in-bucket", "postgresql"])
def hosts(request, seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory):
    """Two hosts on one bucket; the catalog in the bucket, or in PostgreSQL (--database)."""
    tmp = tmp_path_factory.mktemp("hosts")
    url = f"s3://{BUCKET}/multi-{uuid.uuid4().hex[:8]}"
    storage = S3Storage(url, client=seaweedfs.client())
    storage.ensure_bucket()
    _, token = TokenStore(storage).create("ci", "upload")
    database = (
        request.getfixturevalue("postgres").new_database()
        if request.param == "postgresql"
        else None
    )
    a = start_host(tmp, seaweedfs, url, database=database)
    b = start_host(tmp, seaweedfs, url, downloads="redirect", database=database)
    yield {"a": a, "b": b, "token": token, "storage": storage, "tmp": tmp, "database": database}
    for host in (a, b):
        host.stop()


def listed(host: Server, project: str) -> list[dict]:
    req = urllib.request.Request(
        f"{host.url}/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)["files"]
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return []


def wait_listed(host: Server, project: str, filename: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for f in listed(host, project):
            if f["filename"] == filename:
                return f
        assert time.monotonic() < deadline, f"{filename} not listed by {host.url}"
        time.sleep(0.02)


def test_upload_through_one_host_is_listed_and_installable_through_the_other(
    hosts, dists: Dists, tmp_path: Path
):
    a, b = hosts["a"], hosts["b"]
    result = twine_upload(a.url, hosts["token"], dists.pure, dists.native)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = wait_listed(b, "tiny-native", dists.native.name)
    assert entry["hashes"]["sha256"] == hashlib.sha256(dists.native.read_bytes()).hexdigest()
    # Host B redirects downloads to the object store (a pre-signed URL); host A streams them.
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(f"{b.url}/files/tiny-native/{dists.native.name}", timeout=5)
    assert err.value.code == 302 and "Signature" in err.value.headers["Location"]
    with urllib.request.urlopen(f"{a.url}/files/tiny-native/{dists.native.name}") as resp:
        assert resp.read() == dists.native.read_bytes()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    subprocess.run(
        [*pip, "install", "--target", str(tmp_path / "pip"), "--index-url", f"{b.url}/simple/",
         "tiny-native==1.0"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert list((tmp_path / "pip").glob("tiny_native-1.0.dist-info"))
    env = {"UV_NO_CACHE": "1", "UV_PYTHON_DOWNLOADS": "never",
           "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}  # fmt: skip
    proc = subprocess.run(
        ["uv", "pip", "install", "--python", sys.executable, "--target", str(tmp_path / "uv"),
         "--index-url", f"{a.url}/simple/", "tiny-pure==0.1"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "uv").glob("tiny_pure-0.1.dist-info"))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_the_same_filename_raced_through_two_hosts_has_one_winner(hosts, tmp_path: Path):
    a, b = hosts["a"], hosts["b"]
    # Two different wheels with one filename: same name and version, different contents.
    one = make_wheel(tmp_path / "one", "race-proj", "1.0")
    two = make_wheel(tmp_path / "two", "race-proj", "1.0", requires_python=">=3.8")
    assert one.name == two.name and one.read_bytes() != two.read_bytes()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda hw: twine_upload(hw[0].url, hosts["token"], hw[1]), [(a, one), (b, two)]
            )
        )
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.stdout + r.stderr for r in results]
    loser = next(r for r in results if r.returncode)
    assert "409" in loser.stdout + loser.stderr
    winner = one if results[0].returncode == 0 else two
    for host in (a, b):
        entry = wait_listed(host, "race-proj", one.name)
        assert entry["hashes"]["sha256"] == hashlib.sha256(winner.read_bytes()).hexdigest()
        assert len(listed(host, "race-proj")) == 1


def test_a_yank_through_one_host_is_seen_on_the_other(hosts, tmp_path: Path):
    a, b = hosts["a"], hosts["b"]
    wheel = make_wheel(tmp_path, "yank-proj", "2.0")
    assert twine_upload(b.url, hosts["token"], wheel).returncode == 0
    wait_listed(a, "yank-proj", wheel.name)
    req = urllib.request.Request(
        f"{a.url}/api/projects/yank-proj/yank",
        data=json.dumps({"target": "2.0", "reason": "broken"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": basic(hosts["token"])},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    deadline = time.monotonic() + 5
    while wait_listed(b, "yank-proj", wheel.name)["yanked"] != "broken":
        assert time.monotonic() < deadline, "the yank did not reach host B"
        time.sleep(0.02)


def test_wheelfarm_yank_and_unyank_on_the_shared_index(hosts, seaweedfs: SeaweedFS, tmp_path: Path):
    """The command line reaches the multi-host index (--storage, and --database when the catalog is
    in PostgreSQL) and both hosts see the change."""
    a, b = hosts["a"], hosts["b"]
    wheel = make_wheel(tmp_path, "cli-yank-proj", "3.0")
    assert twine_upload(a.url, hosts["token"], wheel).returncode == 0
    where = ["--storage", hosts["storage"].bucket_url()]
    where += ["--database", hosts["database"]] if hosts["database"] else []
    env = os.environ | seaweedfs.env()

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["wheelfarm", *argv, *where], capture_output=True, text=True, env=env)

    def wait_yanked(host: Server, state) -> None:
        deadline = time.monotonic() + 5
        while wait_listed(host, "cli-yank-proj", wheel.name).get("yanked", False) != state:
            assert time.monotonic() < deadline, f"{host.url} does not show yanked={state!r}"
            time.sleep(0.02)

    proc = run("yank", "Cli_Yank.Proj", "3.0", "--reason", "from the shell", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"filename": wheel.name, "yanked": "from the shell"}]
    for host in (a, b):
        wait_yanked(host, "from the shell")
    proc = run("unyank", "cli-yank-proj", wheel.name)
    assert proc.returncode == 0 and f"un-yanked {wheel.name}" in proc.stdout, proc.stderr
    for host in (a, b):
        wait_yanked(host, False)
    proc = run("yank", "cli-yank-proj", "9.9")
    assert proc.returncode == 1 and "has no file or version '9.9'" in proc.stderr


def index_options(hosts) -> list[str]:
    """What `wheelfarm ...` needs to reach the hosts' index (as every host is started with)."""
    where = ["--storage", hosts["storage"].bucket_url()]
    return where + (["--database", hosts["database"]] if hosts["database"] else [])


def authorised(host: Server, token: str) -> bool:
    """Whether the host takes `token` for writes (a yank of a project that does not exist: 404 once
    the token is accepted, 401 when it is not)."""
    req = urllib.request.Request(
        f"{host.url}/api/projects/no-such-project/yank",
        data=json.dumps({"target": "1.0"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": basic(token)},
        method="POST",
    )
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as exc:
        assert exc.code in (401, 404), exc.code
        return exc.code == 404
    raise AssertionError("a yank of a missing project succeeded")


def test_tokens_created_at_once_through_two_hosts_all_survive(hosts, seaweedfs: SeaweedFS):
    """8 `wheelfarm token create` at once, as on two hosts: every token is kept and works on both
    hosts; a revoke is honoured by both. The tokens are rows in PostgreSQL with --database, else
    auth/tokens.json in the bucket under its lock object."""
    a, b = hosts["a"], hosts["b"]
    env = os.environ | seaweedfs.env()
    cmd = ["wheelfarm", "token", "create", "--json", *index_options(hosts)]
    procs = [
        subprocess.Popen([*cmd, f"racer-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True)
        for i in range(8)
    ]  # fmt: skip
    created = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        created.append(json.loads(out))
    listing = subprocess.run(
        ["wheelfarm", "token", "list", "--json", *index_options(hosts)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    names = [t["name"] for t in json.loads(listing.stdout)]
    assert {f"racer-{i}" for i in range(8)} <= set(names) and "ci" in names  # "ci": the fixture's
    for i, token in enumerate(created):
        assert authorised(a if i % 2 else b, token["token"]), token["name"]
    bucket_tokens = json.loads(hosts["storage"].read_bytes("auth/tokens.json"))["tokens"]
    if hosts["database"]:
        # The bucket's file is what the fixture wrote before the hosts started: imported once.
        assert [t["name"] for t in bucket_tokens] == ["ci"]
        with psycopg.connect(hosts["database"]) as conn:
            rows = conn.execute("SELECT name FROM index_tokens WHERE name LIKE 'racer-%'")
            assert len(rows.fetchall()) == 8
    else:
        assert {f"racer-{i}" for i in range(8)} <= {t["name"] for t in bucket_tokens}
    revoke = subprocess.run(
        ["wheelfarm", "token", "revoke", "racer-3", *index_options(hosts)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stderr
    deadline = time.monotonic() + 3
    while authorised(a, created[3]["token"]) or authorised(b, created[3]["token"]):
        assert time.monotonic() < deadline, "a revoked token is still accepted"
        time.sleep(0.05)
    assert authorised(a, created[4]["token"]) and authorised(b, created[4]["token"])


STATUS = {
    "generated": "2026-12-01T04:00:00Z",
    "run": {"id": "run-42", "counts": {"published": 1}},
    "recipes": {},
    "cells": [],
}


def test_farm_status_pushed_through_one_host_is_read_through_the_other(hosts):
    a, b = hosts["a"], hosts["b"]
    for generated in ("2026-12-01T04:00:00Z", "2026-12-02T04:00:00Z"):
        body = json.dumps(STATUS | {"generated": generated}).encode()
        req = urllib.request.Request(
            f"{a.url}/api/farm/status",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": basic(hosts["token"])},
            method="PUT",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.load(resp)["generated"] == generated
        deadline = time.monotonic() + 1.5
        while True:
            try:
                with urllib.request.urlopen(f"{b.url}/api/farm/status", timeout=5) as resp:
                    if resp.read() == body:
                        break
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
            assert time.monotonic() < deadline, f"host B does not serve the status {generated}"
            time.sleep(0.02)
        # B runs two workers: the one that answered above may not be the one that renders /status,
        # and that one notices the change within its check period (HOT_TTL, CHECK_EVERY).
        while True:
            with urllib.request.urlopen(f"{b.url}/status", timeout=5) as resp:
                if "run-42" in resp.read().decode():
                    break
            assert time.monotonic() < deadline + 1, f"host B's /status lacks {generated}"
            time.sleep(0.02)
    in_bucket = hosts["storage"].exists("farm/status.json")
    if hosts["database"]:
        assert not in_bucket
        with psycopg.connect(hosts["database"]) as conn:
            (doc,) = conn.execute("SELECT document FROM index_farm_status").fetchone()
            assert json.loads(bytes(doc))["generated"] == "2026-12-02T04:00:00Z"
    else:
        assert in_bucket


def basic(token: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def test_a_host_killed_mid_upload_publishes_nothing_and_the_other_serves_on(
    hosts, seaweedfs: SeaweedFS, tmp_path: Path
):
    victim = start_host(
        hosts["tmp"], seaweedfs, hosts["storage"].bucket_url(), database=hosts["database"]
    )
    survivor = hosts["b"]
    wheel = make_wheel(tmp_path, "killed-proj", "1.0")
    body, ctype = multipart(wheel)
    with socket.create_connection(("127.0.0.1", victim.port), timeout=10) as sock:
        head = (
            f"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: {basic(hosts['token'])}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.3)  # the host is reading the body
        victim.kill()  # SIGKILL, master and workers at once
    storage = hosts["storage"]
    assert storage.list("files/killed-proj") == [] and storage.list("records/killed-proj") == []
    if hosts["database"]:
        with psycopg.connect(hosts["database"]) as conn:
            rows = conn.execute("SELECT count(*) FROM index_files WHERE project = 'killed-proj'")
            assert rows.fetchone() == (0,)
    assert listed(survivor, "killed-proj") == []
    # The survivor keeps serving and takes the same upload whole.
    assert twine_upload(survivor.url, hosts["token"], wheel).returncode == 0
    assert wait_listed(survivor, "killed-proj", wheel.name)


def multipart(wheel: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    fields = {":action": "file_upload", "protocol_version": "1", "name": "killed-proj",
              "version": "1.0", "filetype": "bdist_wheel", "pyversion": "py3",
              "metadata_version": "2.1", "sha256_digest": digest}  # fmt: skip
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    out.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{wheel.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    out.write(wheel.read_bytes() + b"\x00" * (4 << 20))  # padding: the kill lands mid-body
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_export_from_the_bucket_index_to_a_bucket_prefix(hosts, seaweedfs: SeaweedFS):
    """`wheelfarm export s3://...` of the S3-backed index: whole objects with the types a static host
    serves; a second run writes nothing."""
    source = hosts["storage"].bucket_url()
    site = f"s3://{BUCKET}/site-{uuid.uuid4().hex[:8]}"
    env = os.environ | seaweedfs.env()

    def run() -> dict:
        proc = subprocess.run(
            ["wheelfarm", "export", site, "--storage", source, "--json",
             *(["--database", hosts["database"]] if hosts["database"] else [])],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    first = run()
    assert "simple/tiny-native/index.json" in first["pages_written"]
    client, prefix = seaweedfs.client(), site.split("/", 3)[3]
    head = client.head_object(Bucket=BUCKET, Key=f"{prefix}/simple/tiny-native/index.json")
    assert head["ContentType"] == "application/vnd.pypi.simple.v1+json"
    page = client.get_object(Bucket=BUCKET, Key=f"{prefix}/simple/tiny-native/index.json")
    doc = json.loads(page["Body"].read())
    (entry,) = doc["files"]
    assert entry["url"] == f"../../files/tiny-native/{entry['filename']}"
    wheel = client.get_object(Bucket=BUCKET, Key=f"{prefix}/files/tiny-native/{entry['filename']}")
    assert hashlib.sha256(wheel["Body"].read()).hexdigest() == entry["hashes"]["sha256"]
    meta = client.head_object(
        Bucket=BUCKET, Key=f"{prefix}/files/tiny-native/{entry['filename']}.metadata"
    )
    assert meta["ContentLength"] > 0
    again = run()
    assert again["pages_written"] == [] and again["files_copied"] == []
