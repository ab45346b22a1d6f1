"""The publishers the README documents, each uploading twice to the real index: twine (in
test_index_simple_api), hatch (asks /legacy/+simple/<project>/ to skip what is there), poetry and pdm
(`--skip-existing`: they skip a 409)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.client_tools import client_tool
from support.projects import make_dummy_wheel


def env(tmp: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POETRY_", "PDM_", "HATCH_"))}
    base.update(
        HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "config"), XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "share"), NO_COLOR="1", PDM_CHECK_UPDATE="false",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", **extra,
    )  # fmt: skip
    return base


def project(tmp: Path, name: str) -> Path:
    root = tmp / name
    make_dummy_wheel(root / "dist", name, "1.0")
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.0"\nrequires-python = ">=3.8"\n'
    )
    return root


def run(cmd: list[str], cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def files_of(server, name: str) -> list[str]:
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{server.url}/simple/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return [f["filename"] for f in json.load(resp)["files"]]


def test_hatch_publishes_twice(server, upload_token, tmp_path: Path) -> None:
    root = project(tmp_path, "tiny-hatch-pub")
    cmd = [str(client_tool("hatch")), "publish", "-n", "-r", f"{server.url}/legacy/",
           "-u", "__token__", "-a", upload_token, *map(str, (root / "dist").glob("*.whl"))]  # fmt: skip
    first = run(cmd, root, env(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    second = run(cmd, root, env(tmp_path))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already exists" in (second.stdout + second.stderr).lower()
    assert files_of(server, "tiny-hatch-pub") == ["tiny_hatch_pub-1.0-py3-none-any.whl"]


def test_poetry_publishes_twice(server, upload_token, tmp_path: Path) -> None:
    root = project(tmp_path, "tiny-poetry-pub")
    environ = env(tmp_path)
    poetry = str(client_tool("poetry"))
    config = [poetry, "config", "repositories.wheelfarm", f"{server.url}/legacy/"]
    assert run(config, root, environ).returncode == 0
    cmd = [poetry, "publish", "-r", "wheelfarm", "-u", "__token__", "-p", upload_token,
           "--skip-existing", "-n"]  # fmt: skip
    for _ in range(2):
        result = run(cmd, root, environ)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "exists" in (result.stdout + result.stderr).lower()
    assert files_of(server, "tiny-poetry-pub") == ["tiny_poetry_pub-1.0-py3-none-any.whl"]


def test_pdm_publishes_twice(server, upload_token, tmp_path: Path) -> None:
    root = project(tmp_path, "tiny-pdm-pub")
    cmd = [str(client_tool("pdm")), "publish", "--no-build", "--skip-existing",
           "-r", f"{server.url}/legacy/", "-u", "__token__", "-P", upload_token]  # fmt: skip
    for _ in range(2):
        result = run(cmd, root, env(tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
    assert "skip" in (result.stdout + result.stderr).lower()
    assert files_of(server, "tiny-pdm-pub") == ["tiny_pdm_pub-1.0-py3-none-any.whl"]
