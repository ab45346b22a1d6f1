"""Running the index under gunicorn: the one command line (`wheelfarm serve` execs it) and a
supervised instance for a caller that needs the index for a while (`wheelfarm nightly --serve`):
start it, wait until it answers, stop it when the caller is done or gets SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from index_server.state import Config

# gevent workers: each connection is a greenlet, so hundreds of slow or idle clients (slowloris:
# trickled headers or bodies) cost memory, not threads, and /simple/ keeps answering (threads are not
# a fix: any fixed number of them is taken by that many slow clients). gunicorn gives up on a
# request's headers after --keep-alive seconds; index_server/slowclients.py bounds body reads.
# The app is loaded in each worker, after gevent has patched the standard library (no --preload).
WORKER_CONNECTIONS = 4000
HEADER_TIMEOUT = 5  # seconds for a request's headers (and between requests on a kept-alive one)
WORKER_ARGS = [
    "--worker-class",
    "gevent",
    "--worker-connections",
    str(WORKER_CONNECTIONS),
    "--keep-alive",
    str(HEADER_TIMEOUT),
]
APP = "index_server.app:create_app()"


class IndexStartError(RuntimeError):
    """The index exited or did not answer in time; the message says where its log is."""


def gunicorn_argv(host: str, port: int, workers: int, access_log: bool = False) -> list[str]:
    """The production command: gunicorn with the app factory; configuration travels in the env."""
    import gunicorn

    # gunicorn 27 opens a control socket at one fixed path per user; several indexes would collide.
    extra = ["--no-control-socket"] if gunicorn.version_info >= (27,) else []
    return [
        sys.executable,
        "-m",
        "gunicorn",
        *extra,
        "--workers",
        str(workers),
        *WORKER_ARGS,
        "--bind",
        f"{host}:{port}",
        *(["--access-logfile", "-"] if access_log else []),
        "--timeout",
        "300",  # slow uploads of big wheels
        APP,
    ]


def exec_gunicorn(
    config: Config, host: str, port: int, workers: int | None = None, access_log: bool = False
) -> None:
    """Replace this process with gunicorn serving the index (what `wheelfarm serve` does)."""
    env = {**os.environ, **config.to_env()}
    argv = gunicorn_argv(host, port, workers or os.cpu_count() or 1, access_log)
    os.execve(sys.executable, argv, env)


def wait_until_answering(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Return once GET {url}simple/ answers (any HTTP status); IndexStartError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise IndexStartError(f"the index did not start (see {log})")
        try:
            urllib.request.urlopen(url + "simple/", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (401 when private)
        except OSError:
            time.sleep(0.2)
    raise IndexStartError(f"the index did not answer at {url} within {timeout:.0f} s (see {log})")


@contextlib.contextmanager
def running_index(
    config: Config, port: int, log: Path, host: str = "127.0.0.1", workers: int | None = None
) -> Iterator[str]:
    """The index under gunicorn for the duration of the block; yields its URL ("http://host:port/").

    SIGTERM to this process (systemd, kill) leaves the block like an exception, so the server is
    stopped (SIGTERM to its process group) instead of outliving the caller.
    """
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    config.data.mkdir(parents=True, exist_ok=True)
    argv = gunicorn_argv(host, port, workers or os.cpu_count() or 1)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **config.to_env()},
        )
        url = f"http://{host}:{port}/"
        try:
            wait_until_answering(url, proc, log)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have died on its own
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            signal.signal(signal.SIGTERM, previous)
