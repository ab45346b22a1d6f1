"""Cold start of `make farm`: fresh data and cache folders, then time to the first page served, to the
first wheel on the index, and to the end of the run; the slowest steps, from the nightly's own
progress lines (one plain line per step change when its output is not a terminal).

    .venv/bin/python bench/cold_start.py [--port 18080] [--keep DIR] [--jobs N]

It runs `make farm PORT=<port>` exactly as a newcomer does (the Makefile's `farm` target:
`wheelfarm nightly --serve`), with WHEELFARM_DATA and WHEELFARM_CACHE pointing at empty folders, and
polls the index from outside like a browser would. Prints a JSON document, then a Markdown table.
The peer is the run's own total: the two first-times are given as fractions of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<clock>\d\d:\d\d:\d\d) (?P<what>.*)$")
JOB = re.compile(r"^(?P<job>\S+ \S+ cp\S+ \S+): (?P<step>.*)$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument(
        "--keep", type=Path, help="Use (and keep) this folder instead of a temporary one."
    )
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="wheelfarm-cold-"))
    data, cache = root / "data", root / "cache"
    for d in (data, cache):
        if d.exists() and any(d.iterdir()):
            sys.exit(f"{d} is not empty: a cold start needs empty folders")
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WHEELFARM_DATA": str(data), "WHEELFARM_CACHE": str(cache)}
    env.pop("WHEELFARM_CONFIG", None)  # the clone's own wheelfarm.toml configures the farm
    base = f"http://127.0.0.1:{args.port}/"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["make", "-s", "farm", f"PORT={args.port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    marks: dict[str, float] = {}
    lines: list[tuple[float, str]] = []
    summary: list[str] = []

    def read_err() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            now = time.monotonic() - t0
            line = raw.rstrip("\n")
            lines.append((now, line))
            if line.startswith("serving ") and "said serving" not in marks:
                marks["said serving"] = now
            if line.startswith("still serving"):
                marks["run finished"] = now

    def read_out() -> None:
        assert proc.stdout is not None
        summary.extend(proc.stdout)

    for target in (read_err, read_out):
        threading.Thread(target=target, daemon=True).start()
    with httpx.Client(timeout=5) as http:
        while "run finished" not in marks and proc.poll() is None:
            now = time.monotonic() - t0
            if now > args.timeout:
                break
            try:
                if "first page" not in marks and http.get(base).status_code == 200:
                    marks["first page"] = time.monotonic() - t0
                if "first page" in marks and "first wheel" not in marks and _has_wheel(http, base):
                    marks["first wheel"] = time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.25 if "first page" not in marks else 2.0)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    doc = {
        "root": str(root),
        "seconds": {k: round(v, 1) for k, v in marks.items()},
        "slowest_steps": _slowest(lines),
        "summary": [s.rstrip("\n") for s in summary],
        "stderr_tail": [line for _, line in lines[-15:]],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(doc, indent=2))
    print("\n| mark | seconds |\n|---|---:|")
    for k, v in doc["seconds"].items():
        print(f"| {k} | {v} |")
    print("\n| step | seconds |\n|---|---:|")
    for s in doc["slowest_steps"]:
        print(f"| {s['what']} | {s['seconds']} |")
    return 0 if "run finished" in marks else 1


def _has_wheel(http: httpx.Client, base: str) -> bool:
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    projects = http.get(base + "simple/", headers=accept).json().get("projects", [])
    for p in projects:
        page = http.get(f"{base}simple/{p['name']}/", headers=accept).json()
        if any(f["filename"].endswith(".whl") for f in page.get("files", [])):
            return True
    return False


def _slowest(lines: list[tuple[float, str]], n: int = 10) -> list[dict[str, object]]:
    """Each job step lasts until the next line of the same job, a run-level step (planning,
    installing host tools) until the next line; the n longest."""
    spans: list[tuple[float, str]] = []
    last_job: dict[str, tuple[float, str]] = {}
    last_run: tuple[float, str] | None = None
    for at, line in lines:
        m = LINE.match(line)
        if not m:
            continue
        what = m["what"]
        if last_run is not None:  # a run-level step ends with the next line of any kind
            spans.append((at - last_run[0], last_run[1]))
            last_run = None
        if j := JOB.match(what):
            if j["job"] in last_job:
                start, step = last_job[j["job"]]
                spans.append((at - start, f"{j['job']}: {step}"))
            last_job[j["job"]] = (at, j["step"])
        else:
            last_run = (at, what)
    spans.sort(reverse=True)
    return [{"what": w, "seconds": round(s, 1)} for s, w in spans[:n]]


if __name__ == "__main__":
    sys.exit(main())
