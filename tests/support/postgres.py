"""A real PostgreSQL server for the tests, from Debian's `postgresql` package.

`initdb` into a fresh folder (as the `postgres` user when we are root: PostgreSQL refuses to run as
root), `postgres` on a free loopback port with its unix socket in that folder, one database per test,
and a fast shutdown at the end. Nothing is skipped: if the server cannot start, `PostgresError` says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> Path:
    # Debian installs the server binaries outside PATH, one folder per major version.
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    raise PostgresError(
        "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb "
        "(tests/debian-packages.txt lists `postgresql`; run `make test-debs`)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, base: Path | None = None) -> None:
        """base: the folder to keep the cluster in (the benchmarks give /dev/shm, where the other
        servers' data is, so that a commit's fsync costs what a file's does there); default: TMPDIR."""
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="wheelfarm-pg-", dir=base))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "wheelfarm"
        self.process: subprocess.Popen[bytes] | None = None
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError(
                    "running as root and there is no `postgres` user to run PostgreSQL as"
                ) from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.as_user, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PostgresError(
                f"{args[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
            )

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        logfile = self.root / "postgres.log"
        with open(logfile, "wb") as log:
            self.process = subprocess.Popen(
                [
                    *self.as_user,
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=50",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise PostgresError(f"postgres exited: {logfile.read_text(errors='replace')}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError(
                        f"postgres did not accept connections in 60 s: {exc}\n"
                        f"{logfile.read_text(errors='replace')}"
                    ) from exc
                time.sleep(0.2)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its postgresql:// URL."""
        import psycopg

        name = "ledger_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            # The postmaster's own pid (runuser may stand between us and it); SIGINT = fast shutdown.
            pidfile = self.data / "postmaster.pid"
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
