"""Index server benchmark: wheelfarm's index against pypiserver, same data, same load, same machine.

    .venv/bin/python bench/index_bench.py [--projects 1000] [--duration 10] [--connections 32]

Builds one data set of small valid wheels (1,000 projects x 20 files plus one project with 2,000
files), loads it into wheelfarm's storage (through the same Catalog.add an upload uses) and into a
pypiserver folder, serves both under gunicorn with the same number of workers (one per core) on
loopback, and drives each with wrk (Debian's; installed with apt-get when missing) at 32
connections: requests/s and p50/p99 latency for /simple/, a 20-file project page, the 2,000-file
project page and one file download, then the ratio wheelfarm/pypiserver. wheelfarm's upstream is a
local static index (tests/support/static_index.py, max-age=600) holding 20 other files of the 20-file
project: the overlay's page of it (40 files, upstream page warm in the cache) is measured too, next
to /simple/ (pypiserver has no overlay).

pypiserver (from PyPI, with its [cache] extra so it caches directory listings) lives in its own venv
under the cache folder. Data sits on /dev/shm when there is one, so disk speed is out of the picture
for both servers. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
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

from support.projects import make_dummy_wheel  # noqa: E402
from support.static_index import FileSpec, StaticIndexServer, write_static_index  # noqa: E402

from builder.common.paths import cache_dir  # noqa: E402
from index_server.serving import WORKER_ARGS  # noqa: E402

# pypiserver under gunicorn's threaded workers, as before wheelfarm moved to gevent (its venv has no
# gevent); wheelfarm runs exactly what `wheelfarm serve` runs.
PYPISERVER_ARGS = ["--worker-class", "gthread", "--threads", "4"]

PYPISERVER = "pypiserver[cache]==2.4.2"
RAW_LOG: Path | None = None  # wrk's own output, for anyone who wants to check the parsing
BIG = "big-project"
OVERLAY_TAG = (
    "cp311-cp311-manylinux_2_17_x86_64"  # the upstream's cells; the farm's are py3-none-any
)
OVERLAY_ROW = "overlay 40-file page"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def ensure_pypiserver() -> Path:
    """A venv with pypiserver and the same gunicorn as ours, under the cache folder."""
    import gunicorn

    venv = cache_dir() / "bench" / "pypiserver-venv"
    want = [PYPISERVER, f"gunicorn=={gunicorn.__version__}"]
    stamp = venv / "installed.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(want):
        print(f"installing {' '.join(want)} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "-q", *want], check=True)
        stamp.write_text("\n".join(want))
    return venv


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


@contextlib.contextmanager
def serving(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n{log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/simple/", timeout=30).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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

        port = free_port()
        pypi_cmd = [
            str(venv / "bin" / "gunicorn"), "--workers", str(args.workers), *PYPISERVER_ARGS,
            "--bind", f"127.0.0.1:{port}",
            f"pypiserver:app(root={str(work / 'wheels')!r}, verbosity=0)",
        ]  # fmt: skip
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
    print("| endpoint | wheelfarm req/s | p50 / p99 ms | pypiserver req/s | p50 / p99 ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in results["wheelfarm"]:
        w, p = results["wheelfarm"][label], results["pypiserver"].get(label)
        if p is None:  # the overlay: against wheelfarm's own 20-file /simple/ page
            ref = results["wheelfarm"]["20-file page"]
            print(
                f"| {label} | {w.rps:.0f} | {_lat(w, args)} | (/simple/ 20-file page: "
                f"{ref.rps:.0f}) | {_lat(ref, args)} | {w.rps / ref.rps:.2f}x of /simple/ |"
            )
            continue
        # Not one answer in the run means fewer than 1/duration per second.
        ratio = f"{w.rps / p.rps:.1f}x" if p.rps > 0 else f"> {w.rps * args.duration:.0f}x"
        print(
            f"| {label} | {w.rps:.0f} | {_lat(w, args)} | {p.rps:.1f} | {_lat(p, args)} | {ratio} |"
        )
    print(f"wrk's own output: {RAW_LOG}")
    errors = {k: sum(r.errors for r in v.values()) for k, v in results.items()}
    if any(errors.values()):
        print(f"errors (non-2xx/3xx or socket): {errors}")


if __name__ == "__main__":
    main()
