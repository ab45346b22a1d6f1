"""The overlay (/overlay/simple/): the upstream index and the farm behind one URL, tried with real
clients (pip, uv, poetry, pdm) against a local fake upstream (tests/support/static_index.py) and the
real index under gunicorn."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.client_tools import client_tool
from support.index_server import create_token, start_server, twine_upload
from support.projects import make_dummy_wheel, make_sdist
from support.static_index import FileSpec, StaticIndexServer, write_static_index

JSON = "application/vnd.pypi.simple.v1+json"
X86 = "cp311-cp311-manylinux_2_17_x86_64"
ARM = "cp311-cp311-manylinux_2_17_aarch64"
BIN = Path(sys.executable).parent


class Upstream:
    """A fake upstream index: its projects, rewritten on demand, served by a real HTTP server."""

    def __init__(self, root: Path, projects: dict[str, list[FileSpec]]) -> None:
        self.root, self.projects = root, projects
        write_static_index(root, projects)
        self.server = StaticIndexServer(root)

    def rewrite(self) -> None:
        write_static_index(self.root, self.projects)

    @property
    def url(self) -> str:
        return self.server.url


def spec(path: Path, **kwargs) -> FileSpec:
    return FileSpec(path.name, path.read_bytes(), **kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    up = tmp_path_factory.mktemp("upstream-dists")
    farm = tmp_path_factory.mktemp("farm-dists")
    return {
        "up_x86": make_dummy_wheel(up, "tiny-native", "1.0", tag=X86, payload=b"# x86_64\n"),
        "up_sdist": make_sdist(up, "tiny-native", "1.0"),
        "up_old": make_dummy_wheel(up, "tiny-native", "0.9", tag=X86, payload=b"# old\n"),
        "fresh_old": make_dummy_wheel(up, "tiny-fresh", "1.0"),
        "fresh_new": make_dummy_wheel(up, "tiny-fresh", "1.1"),
        "unseen": make_dummy_wheel(up, "tiny-unseen", "1.0"),
        "private_up": make_dummy_wheel(up, "tiny-private", "9.9"),
        "farm_arm": make_dummy_wheel(farm, "tiny-native", "1.0", tag=ARM, payload=b"# aarch64\n"),
        "private": make_dummy_wheel(farm, "tiny-private", "0.1"),
    }


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]):
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    projects = {
        "tiny-native": [
            spec(files["up_old"], yanked="broken build", core_metadata=True),
            spec(files["up_x86"], core_metadata=True),
            spec(files["up_sdist"]),
        ],
        "tiny-fresh": [spec(files["fresh_old"]), spec(files["fresh_new"], upload_time=now)],
        "tiny-unseen": [spec(files["unseen"])],
    }
    up = Upstream(tmp_path_factory.mktemp("upstream"), projects)
    with up.server:
        yield up


def _start(tmp: Path, upstream: Upstream, *extra: str):
    data = tmp / "data"
    server = start_server(
        data,
        upstream=upstream.url,
        extra_args=["--upstream-max-stale", "0", *extra],
        env={"WHEELFARM_CACHE": str(tmp / "cache")},
    )
    return server, create_token(data, "ci")


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, files):
    """The index with the farm's aarch64 wheel of tiny-native and a private project."""
    server, token = _start(tmp_path_factory.mktemp("overlay"), upstream)
    result = twine_upload(server.url, token, files["farm_arm"], files["private"])
    assert result.returncode == 0, result.stdout + result.stderr
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream):
    """An overlay with a 7-day cooldown and upstream files through the pull-through cache."""
    server, _token = _start(
        tmp_path_factory.mktemp("guarded"),
        upstream,
        "--cooldown-days",
        "7",
        "--cache-upstream-files",
    )
    yield server
    server.stop()


def get(url: str, accept: str = JSON) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def page(server, name: str) -> tuple[dict, dict[str, str]]:
    status, headers, body = get(f"{server.url}/overlay/simple/{name}/")
    assert status == 200, body
    return json.loads(body), headers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the pages ------------------------------------------------------------------------------------


def test_project_page_merges_upstream_and_farm(overlay, upstream, files) -> None:
    doc, headers = page(overlay, "tiny-native")
    by_name = {f["filename"]: f for f in doc["files"]}
    assert set(by_name) == {files[k].name for k in ("up_old", "up_x86", "up_sdist", "farm_arm")}
    assert headers["X-Wheelfarm-Upstream"] == "fresh"
    assert doc["meta"]["_wheelfarm-upstream"] == "fresh"
    assert doc["versions"] == ["0.9", "1.0"]  # PEP 700
    arm = by_name[files["farm_arm"].name]
    assert arm["url"] == f"/files/tiny-native/{files['farm_arm'].name}"
    assert arm["hashes"] == {"sha256": sha256(files["farm_arm"])}
    assert arm["core-metadata"]["sha256"]  # PEP 658, ours
    x86 = by_name[files["up_x86"].name]
    assert x86["url"].startswith(upstream.url.removesuffix("simple/") + "files/")
    assert x86["size"] == files["up_x86"].stat().st_size and x86["upload-time"]
    # PEP 658 passed through: the upstream's metadata, where its link says, with its hash
    meta_url = x86["url"] + ".metadata"
    status, _, body = get(meta_url, "*/*")
    assert status == 200 and hashlib.sha256(body).hexdigest() == x86["core-metadata"]["sha256"]
    assert by_name[files["up_old"].name]["yanked"] == "broken build"  # upstream's yank (PEP 592)
    html = get(f"{overlay.url}/overlay/simple/tiny-native/", "text/html")[2].decode()
    assert html.count("<a ") == 4 and 'data-yanked="broken build"' in html
    assert f'data-core-metadata="sha256={x86["core-metadata"]["sha256"]}"' in html


def test_farm_yank_shows_on_the_overlay(overlay, files) -> None:
    name = files["farm_arm"].name
    data = str(overlay.data)
    subprocess.run(
        ["wheelfarm", "yank", "tiny-native", name, "--reason", "bad", "--data", data], check=True
    )
    try:
        doc, _ = page(overlay, "tiny-native")
        assert {f["filename"]: f["yanked"] for f in doc["files"]}[name] == "bad"
    finally:
        subprocess.run(["wheelfarm", "unyank", "tiny-native", name, "--data", data], check=True)
    doc, _ = page(overlay, "tiny-native")
    assert {f["filename"]: f["yanked"] for f in doc["files"]}[name] is False


def test_root_lists_the_farm_projects(overlay) -> None:
    status, _, body = get(f"{overlay.url}/overlay/simple/")
    assert status == 200
    assert {p["name"] for p in json.loads(body)["projects"]} == {"tiny-native", "tiny-private"}
    html = get(f"{overlay.url}/overlay/simple/", "text/html")[2].decode()
    assert 'href="/overlay/simple/tiny-native/"' in html


def test_upstream_only_and_unknown_projects(overlay) -> None:
    doc, _ = page(overlay, "tiny-fresh")
    assert len(doc["files"]) == 2
    assert get(f"{overlay.url}/overlay/simple/no-such-project/")[0] == 404
    status, _, _ = get(f"{overlay.url}/overlay/simple/Tiny_Fresh/")
    assert status == 200  # urllib followed the 301 to the normalized name


def test_private_name_is_never_merged(overlay, upstream, files) -> None:
    doc, _ = page(overlay, "tiny-private")
    assert [f["filename"] for f in doc["files"]] == [files["private"].name]
    assert doc["meta"]["_wheelfarm-upstream"] == "private"
    assert "_wheelfarm-warning" not in doc["meta"]
    upstream.projects["tiny-private"] = [spec(files["private_up"])]  # the name appears upstream
    upstream.rewrite()
    try:
        doc, _ = page(overlay, "tiny-private")
        assert [f["filename"] for f in doc["files"]] == [files["private"].name]
        assert doc["versions"] == ["0.1"]
        assert "now has a project named tiny-private" in doc["meta"]["_wheelfarm-warning"]
        html = get(f"{overlay.url}/overlay/simple/tiny-private/", "text/html")[2].decode()
        assert "now has a project named tiny-private" in html and "9.9" not in html
        status_page = get(f"{overlay.url}/status", "text/html")[2].decode()
        assert 'id="shadowed"' in status_page and 'href="/project/tiny-private/"' in status_page
    finally:
        del upstream.projects["tiny-private"]
        upstream.rewrite()


def test_upstream_down_serves_the_last_good_page(overlay, upstream, files) -> None:
    page(overlay, "tiny-native")  # a good page is kept
    for path in ("/simple/tiny-native/", "/simple/tiny-unseen/"):
        upstream.server.behave(path, status=503)
    try:
        doc, headers = page(overlay, "tiny-native")
        assert len(doc["files"]) == 4  # the upstream's files as last seen, and ours
        assert headers["X-Wheelfarm-Upstream"].startswith("stale; as-of=")
        assert doc["meta"]["_wheelfarm-upstream"] == "stale"
        assert headers["Cache-Control"] == "no-cache"
        html = get(f"{overlay.url}/overlay/simple/tiny-native/", "text/html")[2].decode()
        assert "upstream unreachable" in html
        # never asked before: no page to fall back on, and never an empty page
        status, _, body = get(f"{overlay.url}/overlay/simple/tiny-unseen/")
        assert status == 503 and b"no earlier page" in body
    finally:
        upstream.server.state.behaviours.clear()
    _, headers = page(overlay, "tiny-native")
    assert headers["X-Wheelfarm-Upstream"] == "fresh"


def test_upload_simple_pages_for_hatch_and_devpi_clients(overlay, files) -> None:
    for accept in (JSON, "text/html"):
        ours = get(f"{overlay.url}/simple/tiny-native/", accept)
        theirs = get(f"{overlay.url}/legacy/+simple/tiny-native/", accept)
        assert theirs[0] == 200 and theirs[2] == ours[2]
    assert get(f"{overlay.url}/legacy/+simple/")[0] == 200
    assert get(f"{overlay.url}/legacy/+simple/tiny-unseen/")[0] == 404


def test_upstream_max_age_is_kept_and_staleness_is_bounded(tmp_path: Path, files) -> None:
    """The upstream says max-age=600; the overlay serves its cached page (no request) until
    --upstream-max-stale (2 s) has passed, then revalidates and shows the upstream's change."""
    projects = {"tiny-fresh": [spec(files["fresh_old"])]}
    write_static_index(tmp_path / "up", projects)
    with StaticIndexServer(tmp_path / "up", cache_control="max-age=600") as up:
        server = start_server(
            tmp_path / "data",
            upstream=up.url,
            extra_args=["--upstream-max-stale", "2", "--workers", "1"],
            env={"WHEELFARM_CACHE": str(tmp_path / "cache")},
        )
        try:
            doc, _ = page(server, "tiny-fresh")
            asked = up.requests["/simple/tiny-fresh/"]
            projects["tiny-fresh"].append(spec(files["fresh_new"]))
            write_static_index(tmp_path / "up", projects)
            doc, _ = page(server, "tiny-fresh")
            assert len(doc["files"]) == 1 and up.requests["/simple/tiny-fresh/"] == asked
            time.sleep(2.5)
            doc, _ = page(server, "tiny-fresh")
            assert len(doc["files"]) == 2 and doc["versions"] == ["1.0", "1.1"]
        finally:
            server.stop()


# ---- cooldown and the pull-through cache ----------------------------------------------------------


def test_cooldown_hides_a_fresh_upstream_file(guarded, files) -> None:
    doc, _ = page(guarded, "tiny-fresh")
    assert [f["filename"] for f in doc["files"]] == [files["fresh_old"].name]
    assert doc["versions"] == ["1.0"]
    assert doc["meta"]["_wheelfarm-cooldown-hidden"] == 1
    html = get(f"{guarded.url}/overlay/simple/tiny-fresh/", "text/html")[2].decode()
    assert "1 upstream file(s) hidden by the cooldown" in html


def test_pull_through_cache_verifies_and_keeps_files(guarded, upstream, files) -> None:
    doc, _ = page(guarded, "tiny-native")
    by_name = {f["filename"]: f for f in doc["files"]}
    x86 = by_name[files["up_x86"].name]
    assert x86["url"] == f"/overlay/files/tiny-native/{files['up_x86'].name}"
    status, _, body = get(guarded.url + x86["url"], "*/*")
    assert status == 200 and body == files["up_x86"].read_bytes()
    stored = guarded.data / "upstream-files" / sha256(files["up_x86"]) / files["up_x86"].name
    assert stored.read_bytes() == body
    status, _, meta = get(guarded.url + x86["url"] + ".metadata", "*/*")
    assert status == 200 and hashlib.sha256(meta).hexdigest() == x86["core-metadata"]["sha256"]
    # An upstream whose bytes no longer match its page: refused, nothing kept.
    sdist = upstream.root / "files" / files["up_sdist"].name
    original = sdist.read_bytes()
    sdist.write_bytes(original + b"tampered")
    try:
        status, _, body = get(f"{guarded.url}/overlay/files/tiny-native/{sdist.name}", "*/*")
        assert status == 502 and b"sha256" in body
        assert not list((guarded.data / "upstream-files").glob(f"*/{sdist.name}"))
    finally:
        sdist.write_bytes(original)


# ---- real clients ---------------------------------------------------------------------------------


def pip_download(index: str, platform: str, dest: Path, spec_: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-cache-dir", "--disable-pip-version-check",
         "--index-url", index, "--only-binary", ":all:", "--platform", platform,
         "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         "--dest", str(dest), spec_],
        capture_output=True, text=True,
    )  # fmt: skip


def test_pip_through_the_overlay_alone(overlay, guarded, files, tmp_path: Path) -> None:
    index = f"{overlay.url}/overlay/simple/"
    for platform, expected in (
        ("manylinux_2_17_aarch64", files["farm_arm"]),
        ("manylinux_2_17_x86_64", files["up_x86"]),
    ):
        dest = tmp_path / platform
        result = pip_download(index, platform, dest, "tiny-native==1.0")
        assert result.returncode == 0, result.stdout + result.stderr
        assert [p.name for p in dest.iterdir()] == [expected.name]
        assert sha256(dest / expected.name) == sha256(expected)
    # the cooldown: pip takes the newest version the overlay shows
    dest = tmp_path / "fresh"
    result = pip_download(f"{guarded.url}/overlay/simple/", "any", dest, "tiny-fresh")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in dest.iterdir()] == [files["fresh_old"].name]


def uv_env(tmp: Path) -> dict[str, str]:
    # No UV_NO_CONFIG: it would ignore [tool.uv] in pyproject.toml too; a config-less home instead.
    return {**os.environ, "UV_CACHE_DIR": str(tmp / "uv-cache"), "XDG_CONFIG_HOME": str(tmp / "cfg"),
            "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}  # fmt: skip


def uv_project(root: Path, index: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["tiny-native==1.0"]\n\n'
        f'[[tool.uv.index]]\nname = "wheelfarm"\nurl = "{index}"\ndefault = true\n'
    )
    return root


def installed_tag(venv: Path, dist: str) -> str:
    (wheel,) = venv.glob(f"lib/python3.*/site-packages/{dist}-*.dist-info/WHEEL")
    return next(line for line in wheel.read_text().splitlines() if line.startswith("Tag:"))


def test_uv_sync_x86_64_and_aarch64_resolve_through_the_overlay(overlay, files, tmp_path) -> None:
    env = uv_env(tmp_path)
    uv = str(BIN / "uv")
    # Control: the farm-only index as the default index fails on x86_64 (the report).
    farm_only = uv_project(tmp_path / "farm-only", f"{overlay.url}/simple/")
    result = subprocess.run([uv, "sync", "--python", sys.executable], cwd=farm_only, env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "tiny-native" in result.stderr

    index = f"{overlay.url}/overlay/simple/"
    app = uv_project(tmp_path / "app", index)
    result = subprocess.run([uv, "sync", "--python", sys.executable], cwd=app, env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert installed_tag(app / ".venv", "tiny_native") == f"Tag: {X86}"  # upstream's wheel
    lock = (app / "uv.lock").read_text()
    assert f"/files/tiny-native/{files['farm_arm'].name}" in lock  # the farm's, for aarch64
    assert sha256(files["farm_arm"]) in lock

    req = tmp_path / "requirements.in"
    req.write_text("tiny-native==1.0\n")
    result = subprocess.run(
        [uv, "pip", "compile", "--python-platform", "aarch64-manylinux_2_17", "--python-version",
         "3.11", "--index-url", index, "--generate-hashes", str(req)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tiny-native==1.0" in result.stdout and sha256(files["farm_arm"]) in result.stdout
    target = tmp_path / "aarch64"
    result = subprocess.run(
        [uv, "pip", "install", "--python-platform", "aarch64-manylinux_2_17", "--python-version",
         "3.11", "--index-url", index, "--target", str(target), "--python", sys.executable,
         "tiny-native==1.0"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = target.glob("tiny_native-1.0.dist-info/WHEEL")
    assert f"Tag: {ARM}" in wheel.read_text()


def tool_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POETRY_", "PDM_", "HATCH_"))}
    env.update(
        HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "config"), XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "share"), NO_COLOR="1", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        POETRY_VIRTUALENVS_CREATE="false", PDM_CHECK_UPDATE="false", PDM_IGNORE_SAVED_PYTHON="1",
    )  # fmt: skip
    return env


def lock_filenames(text: str) -> set[str]:
    return {f for f in (Path(p).name for p in text.replace('"', " ").split()) if f.endswith(".whl")}


def test_poetry_with_the_overlay_as_primary_source_locks_both(overlay, files, tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11,<4"\n'
        'dependencies = ["tiny-native==1.0"]\n\n[tool.poetry]\npackage-mode = false\n\n'
        f'[[tool.poetry.source]]\nname = "wheelfarm"\nurl = "{overlay.url}/overlay/simple/"\n'
        'priority = "primary"\n'
    )
    result = subprocess.run([str(client_tool("poetry")), "lock", "--no-interaction"], cwd=root,
                            env=tool_env(tmp_path), capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lock = (root / "poetry.lock").read_text()
    assert {files["up_x86"].name, files["farm_arm"].name} <= lock_filenames(lock)
    assert sha256(files["farm_arm"]) in lock and sha256(files["up_x86"]) in lock


def test_pdm_with_the_overlay_as_its_index_locks_both(overlay, files, tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["tiny-native==1.0"]\n\n'
        f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{overlay.url}/overlay/simple/"\n'
    )
    result = subprocess.run(
        [str(client_tool("pdm")), "lock"], cwd=root,
        env={**tool_env(tmp_path), "PDM_PYTHON": sys.executable}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lock = (root / "pdm.lock").read_text()
    assert f"sha256:{sha256(files['farm_arm'])}" in lock
    assert f"sha256:{sha256(files['up_x86'])}" in lock
    assert {files["up_x86"].name, files["farm_arm"].name} <= lock_filenames(lock)


# ---- against PyPI ---------------------------------------------------------------------------------

CRCMOD_SDIST = "crcmod-1.7.tar.gz"
CRCMOD_SDIST_SHA256 = "dc7051a0db5f2bd48665a990d3ec1cc305a466a77358ca4492826f41f283601e"


@pytest.mark.e2e
def test_overlay_of_pypi_resolves_crcmod_on_both_platforms(tmp_path: Path) -> None:
    """The issue's report: crcmod 1.7 (an sdist on PyPI) with the farm's aarch64 wheel, one URL."""
    wheel = make_dummy_wheel(tmp_path / "farm", "crcmod", "1.7", tag=ARM)
    data = tmp_path / "data"
    server = start_server(
        data, workers=1, upstream="pypi", env={"WHEELFARM_CACHE": str(tmp_path / "cache")}
    )
    try:
        result = twine_upload(server.url, create_token(data, "ci"), wheel)  # 1.7 is on PyPI
        assert result.returncode == 0, result.stdout + result.stderr
        doc, _ = page(server, "crcmod")
        by_name = {f["filename"]: f for f in doc["files"]}
        assert by_name[CRCMOD_SDIST]["hashes"]["sha256"] == CRCMOD_SDIST_SHA256
        assert by_name[CRCMOD_SDIST]["url"].startswith("https://files.pythonhosted.org/")
        assert by_name[wheel.name]["url"] == f"/files/crcmod/{wheel.name}"
        req = tmp_path / "requirements.in"
        req.write_text("crcmod==1.7\n")
        for platform, expected in (
            ("aarch64-manylinux_2_17", sha256(wheel)),
            ("x86_64-manylinux_2_17", CRCMOD_SDIST_SHA256),
        ):
            out = subprocess.run(
                [str(BIN / "uv"), "pip", "compile", "--python-platform", platform,
                 "--python-version", "3.11", "--generate-hashes", "--index-url",
                 f"{server.url}/overlay/simple/", str(req)],
                env=uv_env(tmp_path), capture_output=True, text=True,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert f"sha256:{expected}" in out.stdout
    finally:
        server.stop()
