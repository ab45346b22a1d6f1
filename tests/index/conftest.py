"""Session fixtures for the index tests (helpers live in support/index_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import chromium
from support.index_server import Dists, Server, create_token, start_server
from support.index_server import twine_upload as run_twine_upload
from support.projects import make_sdist, make_wheel
from support.seaweedfs import SeaweedFS, start_seaweedfs


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dists")
    return Dists(
        pure=make_wheel(out, "Tiny-Pure", "0.1", requires_python=">=3.8,<4"),
        pure_sdist=make_sdist(out / "sdist", "tiny-pure", "0.1", requires_python=">=3.8,<4"),
        native=make_wheel(out, "tiny-native", "1.0", c_extension=True),
    )


@pytest.fixture(scope="session")
def index_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index") / "data"


@pytest.fixture(scope="session")
def upload_token(index_data: Path) -> str:
    return create_token(index_data, "ci")


@pytest.fixture(scope="session")
def server(index_data: Path, upload_token: str):
    srv = start_server(index_data)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def twine_upload(server: Server, upload_token: str):
    def upload(*files: Path, skip_existing: bool = False, token: str | None = None):
        return run_twine_upload(
            server.url, token or upload_token, *files, skip_existing=skip_existing
        )

    return upload


@pytest.fixture(scope="session")
def published(server: Server, dists: Dists, twine_upload) -> Dists:
    """The tiny distributions, uploaded once with real twine."""
    result = twine_upload(dists.pure, dists.pure_sdist, dists.native)
    assert result.returncode == 0, result.stdout + result.stderr
    return dists


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for every page test of the index."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as drv:
        yield drv


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory):
    """A real S3-compatible server (SeaweedFS) for the session, on free ports, data in a temp folder."""
    server: SeaweedFS = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
