"""The servers the index benchmarks start, and how they are measured: wheelfarm (by the caller),
the peers pypiserver and devpi-server (each from PyPI into its own venv under the cache folder, so
the project's venv stays free of them), `serving` (start, wait until it answers, stop the whole
process group) and `tree_cpu` (CPU seconds of a server process and its children, from /proc).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.common.paths import cache_dir

# pypiserver under gunicorn's threaded workers, as before wheelfarm moved to gevent (its venv has no
# gevent); wheelfarm runs exactly what `wheelfarm serve` runs.
PYPISERVER_ARGS = ["--worker-class", "gthread", "--threads", "4"]
PYPISERVER = "pypiserver==2.4.2"
# pypiserver caches directory listings when watchdog imports. Its [cache] extra pins watchdog 6.0.0,
# with which every read invalidates the cache (pypiserver issue #502: reading the folder fires a
# watchdog event that clears it), so it looked like ~10 req/s; with watchdog 2.2.1 the cache works.
# Installed without the extra and with that pin, so the peer runs at its best.
WATCHDOG = "watchdog==2.2.1"

# devpi-server as its documentation runs it: one process (its keyfs is a SQLite database with one
# writer; several processes on one server folder are not supported, replicas are for scaling
# reads), waitress with its default 50 threads. devpi-client is not needed: the bench speaks devpi's
# HTTP API (create a user, log in, create an index) and uploads with twine, as `devpi upload` does.
DEVPI = ["devpi-server==6.20.3"]
DEVPI_USER, DEVPI_PASSWORD, DEVPI_INDEX = "bench", "bench-password", "dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv(name: str, want: list[str]) -> Path:
    """A venv under the cache folder with exactly `want` installed (pip, from PyPI)."""
    venv = cache_dir() / "bench" / name
    stamp = venv / "installed.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(want):
        print(f"installing {' '.join(want)} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "-q", *want], check=True)
        stamp.write_text("\n".join(want))
    return venv


def ensure_pypiserver() -> Path:
    """A venv with pypiserver and the same gunicorn as ours, under the cache folder."""
    import gunicorn

    return _venv("pypiserver-venv", [PYPISERVER, WATCHDOG, f"gunicorn=={gunicorn.__version__}"])


def ensure_devpi() -> Path:
    return _venv("devpi-venv", DEVPI)


def pypiserver_cmd(venv: Path, root: Path, port: int, workers: int) -> list[str]:
    """pypiserver under gunicorn. Uploads need no password here (`-a . -P .`): pypiserver checks an
    htpasswd file (passlib) per request otherwise, and the peer is run at its best."""
    return [
        str(venv / "bin" / "gunicorn"), "--workers", str(workers), *PYPISERVER_ARGS,
        "--bind", f"127.0.0.1:{port}",
        f"pypiserver:app(root={str(root)!r}, verbosity=0, authenticate=[], password_file='.')",
    ]  # fmt: skip


@contextlib.contextmanager
def serving_process(
    cmd: list[str], port: int, env: dict[str, str], log: Path, probe: str = "/simple/"
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `cmd` in a session of its own until the block ends; yields (its URL, the process) once
    GET `probe` answers 2xx or 3xx. The whole process group is stopped at the end."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n{log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + probe, timeout=30).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serving(
    cmd: list[str], port: int, env: dict[str, str], log: Path, probe: str = "/simple/"
) -> Iterator[str]:
    with serving_process(cmd, port, env, log, probe) as (url, _proc):
        yield url


# -- devpi-server ---------------------------------------------------------------------------------
@dataclass
class Devpi:
    url: str  # the server's base URL
    proc: subprocess.Popen
    token: str  # a login token of DEVPI_USER (what `devpi login` keeps; twine sends it as password)

    @property
    def index_url(self) -> str:
        """Where twine uploads (devpi's upload URL is the index itself)."""
        return f"{self.url}/{DEVPI_USER}/{DEVPI_INDEX}/"

    def simple(self, project: str = "") -> str:
        return f"{self.index_url}+simple/{project + '/' if project else ''}"


def _devpi_call(url: str, method: str, path: str, body: dict, auth: str | None = None) -> dict:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if auth:
        headers["X-Devpi-Auth"] = base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(
        url + path, method=method, data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


@contextlib.contextmanager
def devpi_server(venv: Path, folder: Path, env: dict[str, str]) -> Iterator[Devpi]:
    """A fresh devpi-server (no root/pypi mirror: nothing reaches PyPI) with user DEVPI_USER and
    its index DEVPI_INDEX (no bases), for the duration of the block."""
    serverdir = folder / "server"
    if not serverdir.exists():
        subprocess.run(
            [venv / "bin" / "devpi-init", "--serverdir", str(serverdir), "--no-root-pypi"],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        fresh = True
    else:
        fresh = False
    port = free_port()
    cmd = [
        str(venv / "bin" / "devpi-server"), "--serverdir", str(serverdir),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with serving_process(cmd, port, env, folder / f"devpi-{port}.log", probe="/+api") as (
        url,
        proc,
    ):
        if fresh:
            _devpi_call(url, "PUT", f"/{DEVPI_USER}", {"password": DEVPI_PASSWORD})
        login = _devpi_call(
            url, "POST", "/+login", {"user": DEVPI_USER, "password": DEVPI_PASSWORD}
        )
        token = login["result"]["password"]
        if fresh:
            _devpi_call(
                url,
                "PUT",
                f"/{DEVPI_USER}/{DEVPI_INDEX}",
                {"bases": []},
                auth=f"{DEVPI_USER}:{token}",
            )
        yield Devpi(url, proc, token)


# -- measuring ------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its ")".
    return raw[raw.rindex(")") + 2 :].split()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and all its live descendants, with the children
    each has already reaped (cutime/cstime): every CPU second of the tree is counted once."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:15])
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in tree or p not in times:
            continue
        tree.add(p)
        todo.extend(c for c, parent in parents.items() if parent == p)
    return sum(times[p] for p in tree) / tick
