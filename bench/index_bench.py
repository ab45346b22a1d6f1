"""Index server benchmark: wheelfarm's index against pypiserver and devpi-server, same data, same
load, same machine.

    .venv/bin/python bench/index_bench.py [--projects 1000] [--duration 10] [--connections 32]
        [--skip-s3] [--skip-devpi]

Builds one data set of small valid wheels (1,000 projects x 20 files plus one project with 2,000
files), loads it into wheelfarm's storage (through the same Catalog.add an upload uses) and into a
pypiserver folder, serves both under gunicorn with the same number of workers (one per core) on
loopback, and drives each with wrk (Debian's; installed with apt-get when missing) at 32
connections: requests/s and p50/p99 latency for /simple/, a 20-file project page, the 2,000-file
project page and one file download, then the ratio wheelfarm/peer. wheelfarm's upstream is a
local static index (tests/support/static_index.py, max-age=600) holding 20 other files of the 20-file
project: the overlay's page of it (40 files, upstream page warm in the cache) is measured too, next
to /simple/ (pypiserver has no overlay).

The same load also goes to the static export of the same index under nginx (the shipped
deploy/nginx configuration), to nginx answering `return 200` from memory (the ceiling of any static
server under this load on these cores, which bounds the export's ratio to the single host) and, unless --skip-s3, to two wheelfarm hosts on SeaweedFS + PostgreSQL
behind nginx as a load balancer (each host with half the workers), and the time from an upload through
one host to the file being listed by the other is measured; a table prints each next to the single host.

The same data set is also uploaded into devpi-server (bench/servers.py: a user and an index made
through its HTTP API, no root/pypi mirror, the wheels uploaded with twine, four twine processes at
once) and the same load goes to its pages, /USER/INDEX/+simple/ and /USER/INDEX/+simple/NAME/, and
to a file it serves (the link on its project page). devpi runs as its documentation runs it: one
process (its keyfs is one SQLite writer; several processes on one server folder are not supported,
replicas are how devpi scales reads), waitress with its default 50 threads; nothing else is tuned.

pypiserver (from PyPI, with watchdog 2.2.1 so that its directory cache works, see WATCHDOG) and
devpi-server 6.20.3 each live in their own venv under the cache folder. Data sits on /dev/shm when there is one, so disk speed is out of the picture
for both servers. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402
    DEVPI_USER,
    PYPISERVER_ARGS,
    devpi_server,
    ensure_devpi,
    ensure_pypiserver,
    free_port,
    pypiserver_cmd,
    serving,
)
from support.index_server import twine_upload  # noqa: E402
from support.nginx import balancer_conf, export_conf, main_conf  # noqa: E402
from support.nginx import command as nginx_command  # noqa: E402
from support.projects import make_dummy_wheel  # noqa: E402
from support.static_index import FileSpec, StaticIndexServer, write_static_index  # noqa: E402

from builder.common.paths import cache_dir  # noqa: E402
from index_server.serving import WORKER_ARGS  # noqa: E402

RAW_LOG: Path | None = None  # wrk's own output, for anyone who wants to check the parsing
BIG = "big-project"
OVERLAY_TAG = (
    "cp311-cp311-manylinux_2_17_x86_64"  # the upstream's cells; the farm's are py3-none-any
)
CEILING = "nginx `return 200` (ceiling)"
OVERLAY_ROW = "overlay 40-file page"
REDIRECT_ROW = "file download (302)"


def ensure_wrk() -> str:
    if path := shutil.which("wrk"):
        return path
    print("installing wrk with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or "wrk"


def make_dataset(out: Path, projects: int, files_per_project: int, big_files: int) -> list[Path]:
    wheels = []
    for p in range(projects):
        for v in range(files_per_project):
            wheels.append(make_dummy_wheel(out, f"proj-{p:04d}", f"1.0.{v}"))
    for v in range(big_files):
        wheels.append(make_dummy_wheel(out, BIG, f"{v // 100}.{v % 100}"))
    return wheels


def load_wheelfarm(data: Path, wheels: list[Path]) -> None:
    from index_server import distfile
    from index_server.catalog import Catalog
    from index_server.storage import LocalStorage

    catalog = Catalog(LocalStorage(data))
    for wheel in wheels:
        with open(wheel, "rb") as fh:
            info = distfile.inspect(fh, wheel.name)
            sha256, size = distfile.hash_file(fh)
            catalog.add(info, fh, sha256, size, notify=False)
    catalog.notify()


def load_s3_postgres(url: str, database: str, client, wheels: list[Path], threads: int = 8) -> None:
    """The same wheels into SeaweedFS + PostgreSQL, through the same Catalog.add an upload uses."""
    from concurrent.futures import ThreadPoolExecutor

    from index_server import distfile
    from index_server.catalog_sql import SqlCatalog
    from index_server.storage_s3 import S3Storage

    storage = S3Storage(url, client=client)
    storage.ensure_bucket()
    catalog = SqlCatalog(storage, database)

    def add(wheel: Path) -> None:
        with open(wheel, "rb") as fh:
            info = distfile.inspect(fh, wheel.name)
            sha256, size = distfile.hash_file(fh)
            catalog.add(info, fh, sha256, size, notify=False)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(add, wheels))
    catalog.notify()


def _serve_cmd(data: Path, port: int, workers: int, url: str, database: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "wheelfarm"), "serve", "--data", str(data),
        "--port", str(port), "--workers", str(workers), "--storage", url, "--database", database,
    ]  # fmt: skip


@contextlib.contextmanager
def two_hosts_behind_nginx(
    work: Path, url: str, database: str, env: dict[str, str], workers: int
) -> Iterator[str]:
    """Two `wheelfarm serve` hosts (each with half the workers) on one bucket and one database,
    nginx balancing over them; yields nginx's URL."""
    work.mkdir(parents=True, exist_ok=True)
    ports = [free_port(), free_port()]
    per_host = max(1, workers // 2)
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports):
            cmd = _serve_cmd(work / f"host{n}", port, per_host, url, database)
            stack.enter_context(serving(cmd, port, env, work / f"host{n}.log"))
        lb = free_port()
        conf = balancer_conf(work / "lb", lb, [f"127.0.0.1:{p}" for p in ports], workers)
        yield stack.enter_context(serving(nginx_command(conf), lb, env, work / "lb.log"))


def _page(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError:
        return ""


def upload_to_visible(
    work: Path, url: str, database: str, env: dict[str, str], client, rounds: int = 5
) -> list[float]:
    """Seconds from twine's upload through host A returning to host B listing the file."""
    from index_server.auth_sql import tokens_for
    from index_server.storage_s3 import S3Storage

    # In the database, where the hosts look (a token in the bucket is imported only at the
    # database's first start, which the measured hosts already made).
    _, token = tokens_for(S3Storage(url, client=client), database).create("bench", "upload")
    work.mkdir(parents=True, exist_ok=True)
    out = []
    with contextlib.ExitStack() as stack:
        hosts = []
        for n in range(2):
            port = free_port()
            cmd = _serve_cmd(work / f"vis{n}", port, 1, url, database)
            hosts.append(stack.enter_context(serving(cmd, port, env, work / f"vis{n}.log")))
        for i in range(rounds):
            wheel = make_dummy_wheel(work / "visible", "visible-proj", f"1.{i}")
            done = twine_upload(hosts[0], token, wheel)
            assert done.returncode == 0, done.stdout + done.stderr
            t0 = time.monotonic()
            while wheel.name not in _page(f"{hosts[1]}/simple/visible-proj/"):
                time.sleep(0.005)
            out.append(time.monotonic() - t0)
    return out


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(wrk: str, url: str, connections: int, duration: int, threads: int) -> Result:
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "30s",
            "-H",
            "Accept-Encoding: gzip, deflate",  # as pip and uv send it
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if RAW_LOG is not None:
        with open(RAW_LOG, "a") as log:
            log.write(f"$ wrk ... {url}\n{out}\n")
    completed = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if completed:
        p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    else:  # not one answer within the run: the latency is at least the run's length
        p50 = p99 = float("inf")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return Result(rps, p50, p99, errors)


def measure(
    wrk: str,
    start: Callable[[], contextlib.AbstractContextManager[str]],
    paths: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Result]:
    """Each endpoint against a freshly started server: requests that an earlier wrk run left queued
    in a slow server would otherwise eat into the next run."""
    results = {}
    for label, path in paths.items():
        with start() as url:
            for _ in range(2 * args.workers):  # every worker renders/caches before timing
                urllib.request.urlopen(url + path, timeout=600).close()
            results[label] = r = run_wrk(
                wrk, url + path, args.connections, args.duration, args.threads
            )
        print(
            f"  {label:<22} {r.rps:>9.1f} req/s  p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  errors {r.errors}",
            flush=True,
        )
    return results


def load_devpi(index_url: str, user: str, token: str, wheels: list[Path], log: Path) -> None:
    """Upload the data set into devpi with twine: chunks of 500 files, four twine processes at once
    (devpi takes one upload at a time per index anyway; this keeps its queue full)."""
    from concurrent.futures import ThreadPoolExecutor

    twine = str(Path(sys.executable).parent / "twine")

    def upload(chunk: list[Path]) -> None:
        cmd = [
            twine, "upload", "--non-interactive", "--disable-progress-bar",
            "--repository-url", index_url, "-u", user, "-p", token, *map(str, chunk),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        with open(log, "a") as fh:
            fh.write(done.stdout[-2000:] + done.stderr[-2000:])
        if done.returncode != 0:
            raise RuntimeError(f"twine upload to devpi failed: {done.stderr[-2000:]}")

    chunks = [wheels[i : i + 500] for i in range(0, len(wheels), 500)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, chunks))


def measure_devpi(
    work: Path,
    wheels: list[Path],
    paths: dict[str, str],
    small_project: str,
    wrk: str,
    args: argparse.Namespace,
) -> dict[str, Result]:
    """The data set uploaded into a fresh devpi-server, then the same endpoints under the same
    load (devpi restarted for each, as the others are)."""
    venv = ensure_devpi()
    folder = work / "devpi"
    folder.mkdir()
    env = dict(os.environ)
    t0 = time.monotonic()
    with devpi_server(venv, folder, env) as server:
        load_devpi(server.index_url, DEVPI_USER, server.token, wheels, folder / "twine.log")
        page = _page(server.simple(small_project))
    print(f"loaded into devpi-server in {time.monotonic() - t0:.1f} s", flush=True)
    link = re.search(r'href="([^"#]+\.whl)', page)
    if link is None:
        raise RuntimeError(f"no file on devpi's page of {small_project}")
    index_path = "/" + server.index_url.split("/", 3)[3]  # /USER/INDEX/
    devpi_paths = {
        label: index_path + "+simple/" + path.removeprefix("/simple/")
        for label, path in paths.items()
    }
    file_url = urllib.parse.urljoin(server.simple(small_project), link.group(1))
    devpi_paths["file download"] = urllib.parse.urlsplit(file_url).path

    @contextlib.contextmanager
    def start() -> Iterator[str]:
        with devpi_server(venv, folder, env) as running:
            yield running.url

    print("devpi-server (one process, waitress, 50 threads):", flush=True)
    return measure(wrk, start, devpi_paths, args)


def _lat(r: Result, args: argparse.Namespace) -> str:
    if r.p50_ms == float("inf"):
        return f"none answered in {args.duration} s"
    return f"{r.p50_ms:.1f} / {r.p99_ms:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--files-per-project", type=int, default=20)
    parser.add_argument("--big-files", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers, both servers"
    )
    parser.add_argument(
        "--skip-s3", action="store_true", help="leave out the SeaweedFS + PostgreSQL hosts"
    )
    parser.add_argument("--skip-devpi", action="store_true", help="leave out devpi-server")
    parser.add_argument(
        "--raw-log",
        type=Path,
        default=cache_dir() / "bench" / "index_bench_wrk.log",
        help="where wrk's own output goes",
    )
    args = parser.parse_args()
    global RAW_LOG
    RAW_LOG = args.raw_log
    RAW_LOG.parent.mkdir(parents=True, exist_ok=True)
    RAW_LOG.write_text("")

    print(
        f"load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    wrk = ensure_wrk()
    venv = ensure_pypiserver()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="wheelfarm-bench-", dir=base) as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        wheels = make_dataset(
            work / "wheels", args.projects, args.files_per_project, args.big_files
        )
        print(f"data set: {len(wheels)} wheels in {time.monotonic() - t0:.1f} s", flush=True)
        t0 = time.monotonic()
        load_wheelfarm(work / "wheelfarm", wheels)
        print(f"loaded into wheelfarm storage in {time.monotonic() - t0:.1f} s", flush=True)
        small_project = f"proj-{args.projects // 2:04d}"
        one_file = next(w for w in wheels if w.name.startswith(small_project.replace("-", "_")))
        paths = {
            "/simple/": "/simple/",
            "20-file page": f"/simple/{small_project}/",
            f"{args.big_files}-file page": f"/simple/{BIG}/",
        }

        results: dict[str, dict[str, Result]] = {}
        port = free_port()
        upstream_files = [
            make_dummy_wheel(work / "upstream-wheels", small_project, f"1.0.{v}", tag=OVERLAY_TAG)
            for v in range(args.files_per_project)
        ]
        write_static_index(
            work / "upstream",
            {small_project: [FileSpec(w.name, w.read_bytes()) for w in upstream_files]},
        )
        upstream = StaticIndexServer(work / "upstream", cache_control="max-age=600, public")
        upstream.__enter__()
        wf_cmd = [
            str(Path(sys.executable).parent / "wheelfarm"), "serve", "--data", str(work / "wheelfarm"),
            "--port", str(port), "--workers", str(args.workers), "--upstream", upstream.url,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        print(f"wheelfarm (gunicorn, {args.workers} gevent workers):", flush=True)
        results["wheelfarm"] = measure(
            wrk,
            lambda: serving(wf_cmd, port, env, work / "wheelfarm.log"),
            {
                **paths,
                "file download": f"/files/{small_project}/{one_file.name}",
                OVERLAY_ROW: f"/overlay/simple/{small_project}/",
            },
            args,
        )
        upstream.__exit__()

        # The static export of the same index, served by nginx with the shipped configuration.
        t0 = time.monotonic()
        subprocess.run(
            [str(Path(sys.executable).parent / "wheelfarm"), "export", str(work / "export"),
             "--data", str(work / "wheelfarm")],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(f"exported in {time.monotonic() - t0:.1f} s", flush=True)
        port = free_port()
        conf = export_conf(
            work / "nginx", work / "export", port, access_log=False, workers=args.workers
        )
        print(f"static export under nginx ({args.workers} workers):", flush=True)
        results["export + nginx"] = measure(
            wrk,
            lambda: serving(nginx_command(conf), port, env, work / "nginx.log"),
            {**paths, "file download": f"/files/{small_project}/{one_file.name}"},
            args,
        )

        # The most any static server can do here: nginx answering 3 bytes from memory (no file,
        # no negotiation) under the same wrk load on the same cores. An export can come close to
        # it, never beyond: it bounds what "export / one host" can reach on this machine.
        port = free_port()
        ceiling = main_conf(
            work / "ceiling",
            f"  access_log off;\n  server {{ listen 127.0.0.1:{port}; "
            "location / { return 200 'ok'; } }",
            args.workers,
        )
        print(f"nginx ceiling, `return 200` ({args.workers} workers):", flush=True)
        results[CEILING] = measure(
            wrk,
            lambda: serving(nginx_command(ceiling), port, env, work / "ceiling.log"),
            {"20-file page": "/anything"},
            args,
        )

        if not args.skip_s3:
            from support.postgres import PostgresServer
            from support.seaweedfs import start_seaweedfs

            sw = start_seaweedfs(work / "seaweedfs")
            pg = PostgresServer(base=work.parent)  # next to the other data: /dev/shm
            try:
                pg.start()
                database = pg.new_database()
                url = "s3://wheelfarm-bench/index"
                t0 = time.monotonic()
                load_s3_postgres(url, database, sw.client(), wheels)
                print(
                    f"loaded into SeaweedFS + PostgreSQL in {time.monotonic() - t0:.1f} s",
                    flush=True,
                )
                s3env = env | sw.env()
                print("two hosts on SeaweedFS + PostgreSQL behind nginx:", flush=True)
                results["2 hosts S3+PG"] = measure(
                    wrk,
                    lambda: two_hosts_behind_nginx(
                        work / "multi", url, database, s3env, args.workers
                    ),
                    {**paths, "file download": f"/files/{small_project}/{one_file.name}"},
                    args,
                )
                # Streaming a file from S3 costs a GET through boto3 per download (~2 ms of the
                # host's CPU and as much of the store's); redirecting costs a pre-signing (~0.3 ms)
                # and hands the bytes to the store. wrk does not follow the 302: this is the index's
                # side of a download.
                print("the same hosts, WHEELFARM_S3_DOWNLOADS=redirect:", flush=True)
                results["2 hosts S3+PG"] |= measure(
                    wrk,
                    lambda: two_hosts_behind_nginx(
                        work / "multi",
                        url,
                        database,
                        s3env | {"WHEELFARM_S3_DOWNLOADS": "redirect"},
                        args.workers,
                    ),
                    {REDIRECT_ROW: f"/files/{small_project}/{one_file.name}"},
                    args,
                )
                visible = upload_to_visible(work / "multi", url, database, s3env, sw.client())
                print(
                    "upload through host A to listed by host B: "
                    + ", ".join(f"{v * 1000:.0f} ms" for v in visible),
                    flush=True,
                )
            finally:
                pg.stop()
                sw.stop()

        if not args.skip_devpi:
            results["devpi-server"] = measure_devpi(work, wheels, paths, small_project, wrk, args)

        port = free_port()
        pypi_cmd = pypiserver_cmd(venv, work / "wheels", port, args.workers)
        print(f"pypiserver (gunicorn, {args.workers} workers x 4 threads):", flush=True)
        results["pypiserver"] = measure(
            wrk,
            lambda: serving(pypi_cmd, port, dict(os.environ), work / "pypiserver.log"),
            {**paths, "file download": f"/packages/{one_file.name}"},
            args,
        )

    print()
    print(
        f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{len(wheels)} files, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"gunicorn -w {args.workers}: wheelfarm {' '.join(WORKER_ARGS)}, pypiserver "
        f"{' '.join(PYPISERVER_ARGS)}, {os.cpu_count()} cores"
    )
    peers = [n for n in ("pypiserver", "devpi-server") if n in results]
    print(
        "| endpoint | wheelfarm req/s | p50 / p99 ms | "
        + " | ".join(f"{n} req/s | p50 / p99 ms | ratio" for n in peers)
        + " |"
    )
    print("|---|---:|---:|" + "---:|---:|---:|" * len(peers))
    for label in results["wheelfarm"]:
        w = results["wheelfarm"][label]
        if label == OVERLAY_ROW:  # the overlay: against wheelfarm's own 20-file /simple/ page
            ref = results["wheelfarm"]["20-file page"]
            print(
                f"| {label} | {w.rps:.0f} | {_lat(w, args)} | (/simple/ 20-file page: "
                f"{ref.rps:.0f}) | {_lat(ref, args)} | {w.rps / ref.rps:.2f}x of /simple/ |"
            )
            continue
        cells = []
        for n in peers:
            p = results[n][label]
            # Not one answer in the run means fewer than 1/duration per second.
            ratio = f"{w.rps / p.rps:.1f}x" if p.rps > 0 else f"> {w.rps * args.duration:.0f}x"
            cells.append(f"{p.rps:.1f} | {_lat(p, args)} | {ratio}")
        print(f"| {label} | {w.rps:.0f} | {_lat(w, args)} | " + " | ".join(cells) + " |")
    print()
    print("| endpoint | layout | req/s | p50 / p99 ms | vs one host |")
    print("|---|---|---:|---:|---:|")
    for label in results["wheelfarm"]:
        base = results["wheelfarm"][label]
        for layout in ("wheelfarm", "export + nginx", "2 hosts S3+PG", CEILING):
            if label in results.get(layout, {}):  # the overlay is measured on one host only
                r = results[layout][label]
                name = "one host" if layout == "wheelfarm" else layout
                print(
                    f"| {label} | {name} | {r.rps:.0f} | {_lat(r, args)} | {r.rps / base.rps:.2f}x |"
                )
    if REDIRECT_ROW in results.get("2 hosts S3+PG", {}):
        r, base = results["2 hosts S3+PG"][REDIRECT_ROW], results["wheelfarm"]["file download"]
        print(
            f"| file download | 2 hosts S3+PG, redirect (302 to a pre-signed URL) | {r.rps:.0f} | "
            f"{_lat(r, args)} | {r.rps / base.rps:.2f}x |"
        )
    print(f"wrk's own output: {RAW_LOG}")
    errors = {k: sum(r.errors for r in v.values()) for k, v in results.items()}
    if any(errors.values()):
        print(f"errors (non-2xx/3xx or socket): {errors}")


if __name__ == "__main__":
    main()
