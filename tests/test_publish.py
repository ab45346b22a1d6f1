"""wheelfarm publish against the real index server under gunicorn, with a local upstream index."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.index_server import create_token, start_server
from support.static_index import FileSpec, StaticIndexServer, write_static_index
from support.wheels import assemble_wheel

from builder.common.upstream import IndexClient
from builder.publish import (
    PRESENT,
    REFUSED,
    UPLOADED,
    UPSTREAM_HAS_IT,
    Destination,
    PublishError,
    publish,
)

PURE = {"demo/__init__.py": b"VALUE = 1\n"}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("publish") / "data"
    token = create_token(data, "publisher")
    server = start_server(data, workers=1)
    yield server, token
    server.stop()


def wheel(out: Path, name: str = "demo", version: str = "1.0", files=PURE) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return assemble_wheel(out, "py3-none-any", files, name=name, version=version)


def test_uploads_then_skips_the_same_bytes_and_refuses_other_bytes(index, tmp_path) -> None:
    server, token = index
    dest = Destination.for_index(server.url + "/simple/", token)
    good = wheel(tmp_path / "a", "pub-one")
    (first,) = publish([good], dest)
    assert (first.status, first.reason) == (UPLOADED, "")
    (again,) = publish([good], dest)
    assert again.status == PRESENT
    other = wheel(tmp_path / "b", "pub-one", files={"demo/__init__.py": b"VALUE = 2\n"})
    assert other.name == good.name
    (clash,) = publish([other], dest)
    assert clash.status == REFUSED and "other bytes" in clash.reason
    page = IndexClient(server.url + "/simple/", cache=False).project("pub-one")
    (stored,) = page.files
    assert stored.filename == good.name  # the first upload stands, never overwritten


def test_the_checker_gates_publishing(index, tmp_path) -> None:
    server, token = index
    elf = Path("/bin/true").read_bytes()  # a native executable in a py3-none-any wheel lies
    liar = wheel(tmp_path, "pub-liar", files={**PURE, "demo/helper": elf})
    good = wheel(tmp_path, "pub-honest")
    results = publish([liar, good], Destination.for_index(server.url, token))
    assert [r.status for r in results] == [REFUSED, UPLOADED]  # one refusal never stops the rest
    assert "WF003-native-in-pure-wheel" in results[0].reason
    with pytest.raises(Exception, match=r"404|no project"):
        IndexClient(server.url + "/simple/", cache=False).project("pub-liar")


def test_upstream_file_names_are_never_shadowed(index, tmp_path) -> None:
    server, token = index
    same = wheel(tmp_path / "same", "pub-up-same")
    differs = wheel(tmp_path / "differs", "pub-up-diff")
    upstream_copy = wheel(tmp_path / "up", "pub-up-diff", files={"demo/__init__.py": b"# theirs\n"})
    root = tmp_path / "upstream"
    write_static_index(
        root,
        {
            "pub-up-same": [FileSpec(same.name, same.read_bytes())],
            "pub-up-diff": [FileSpec(upstream_copy.name, upstream_copy.read_bytes())],
        },
    )
    with StaticIndexServer(root) as up, IndexClient(up.url, cache=False) as client:
        results = publish(
            [same, differs], Destination.for_index(server.url, token), upstream=client
        )
    assert [r.status for r in results] == [UPSTREAM_HAS_IT, REFUSED]
    assert "breaks hash-pinned installs" in results[1].reason


def test_no_token_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("WHEELFARM_INDEX_TOKEN", raising=False)
    with pytest.raises(PublishError, match="WHEELFARM_INDEX_TOKEN"):
        Destination.for_index("http://127.0.0.1:1/")


def test_cli_json_and_exit_codes(index, tmp_path) -> None:
    server, token = index
    good = wheel(tmp_path / "ok", "pub-cli")
    bad = wheel(
        tmp_path / "bad", "pub-cli-bad", files={**PURE, "demo/x": Path("/bin/true").read_bytes()}
    )
    env = {"WHEELFARM_INDEX_TOKEN": token, "PATH": subprocess.os.environ["PATH"]}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["wheelfarm", "publish", "--index", server.url, "--upstream", "none", *args],
            capture_output=True, text=True, env=env,
        )  # fmt: skip

    done = run("--json", str(good))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["status"] == UPLOADED
    done = run("--json", str(good.parent), str(bad))
    assert done.returncode == 1
    assert [r["status"] for r in json.loads(done.stdout)["results"]] == [PRESENT, REFUSED]
    env["WHEELFARM_INDEX_TOKEN"] = "wrong"
    done = run(str(wheel(tmp_path / "new", "pub-cli-new")))
    assert done.returncode == 1 and ("401" in done.stdout or "403" in done.stdout)
