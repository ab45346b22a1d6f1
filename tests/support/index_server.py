"""Helpers for the index tests: the real app under real gunicorn, started by `wheelfarm serve`.

(A uniquely named module rather than conftest.py: test modules import from it, and `conftest` is
not a unique module name across the suite.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_UPLOAD = 1 << 20  # small, so the oversize test stays small


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data: Path
    port: int
    proc: subprocess.Popen
    private: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL gunicorn's master and workers at once: no graceful shutdown of anything."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(
    data: Path,
    *,
    private: bool = False,
    workers: int = 2,
    port: int | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
    strict: bool = False,
    upstream: str = "none",
    extra_args: list[str] | tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Server:
    """`wrap` turns the command into another that runs it (e.g. inside a namespace: tiny_disk).

    `upstream` is the index whose names uploads must not shadow: none by default, since the tests'
    fixture projects are made up (give a local static index's URL to test the policy)."""
    port = port or free_port()
    cmd = [
        "wheelfarm",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--max-upload",
        str(MAX_UPLOAD),
        "--upstream",
        upstream,
    ]
    if private:
        cmd.append("--private")
    if strict:
        cmd.append("--strict")
    cmd.extend(extra_args)
    log = open(data.parent / f"server-{port}.log", "ab")  # noqa: SIM115 - lives as long as the server
    if wrap is not None:
        cmd = wrap(cmd)
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    server = Server(data, port, proc, private)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(data.parent / f'server-{port}.log').read_text()}")
        try:
            urllib.request.urlopen(server.url + "/simple/", timeout=2).close()
            return server
        except urllib.error.HTTPError:
            return server  # it answers (401 when private)
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("server did not start in 30 s")


def create_token(
    data: Path,
    name: str,
    scope: str = "upload",
    wrap: Callable[[list[str]], list[str]] = list,
) -> str:
    out = subprocess.run(
        wrap(
            ["wheelfarm", "token", "create", name, "--scope", scope, "--data", str(data), "--json"]
        ),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)["token"]


@dataclass
class Dists:
    pure: Path  # tiny-pure 0.1 wheel, Requires-Python with < and >
    pure_sdist: Path
    native: Path  # tiny-native 1.0 wheel with a C extension for this machine


def twine_upload(
    url: str, token: str, *files: Path, skip_existing: bool = False
) -> subprocess.CompletedProcess[str]:
    """Real twine uploading `files` to the index at `url` (its base URL) with `token`."""
    cmd = [
        "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{url}/legacy/", "-u", "__token__", "-p", token, *map(str, files),
    ]  # fmt: skip
    if skip_existing:
        cmd.append("--skip-existing")
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
