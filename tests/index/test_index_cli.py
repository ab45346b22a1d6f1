"""`wheelfarm serve` without gunicorn and with its defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.index_server import free_port


def test_embedded_server_uses_the_default_data_folder(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WHEELFARM_DATA": str(tmp_path / "state")}
    proc = subprocess.Popen(
        ["wheelfarm", "serve", "--embedded", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    page = resp.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the embedded server did not start"
                time.sleep(0.1)
        assert f"pip install --extra-index-url http://127.0.0.1:{port}/simple/" in page
        assert "holds 0 projects" in page
        assert (tmp_path / "state" / "index").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_serve_defaults() -> None:
    out = subprocess.run(
        ["wheelfarm", "serve", "--help"], check=True, capture_output=True, text=True
    )
    assert "127.0.0.1" in out.stdout
    assert "8080" in out.stdout


def test_running_index_serves_for_the_block_and_stops_after(tmp_path: Path) -> None:
    """index_server.serving.running_index, what `wheelfarm nightly --serve` runs the index with."""
    from index_server.serving import running_index
    from index_server.state import Config

    port = free_port()
    log = tmp_path / "index.log"
    with running_index(Config(tmp_path / "data", upstream="none"), port, log, workers=1) as url:
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "simple/", timeout=10) as reply:
            assert reply.status == 200
    try:
        urllib.request.urlopen(url + "simple/", timeout=2).close()
    except OSError:
        pass  # refused: the server is gone
    else:
        raise AssertionError("the index still answers after the block")
