"""A no-op nightly over 200 fixture recipes whose wheels our index already serves.

    .venv/bin/python bench/nightly_bench.py [--projects 200]

Everything is up to date, so the nightly plans, asks the ledger about every cell and builds nothing.
The upstream is a static PEP 691 index (tests/support/static_index.py) in its own process; our index
is the real index server under gunicorn, holding one aarch64 wheel per project. Target: under 5 s.

Peer, in the same run: `wheelfarm plan` over the same recipes and both indexes (the part of a nightly
that only asks the indexes). nightly/plan says what the loop itself (ledger, triage, report) adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.index_server import create_token, start_server  # noqa: E402
from support.projects import make_dummy_wheel  # noqa: E402
from support.static_index import FileSpec, write_static_index  # noqa: E402

TAG = "cp311-cp311-manylinux_2_17_aarch64"


def make_world(root: Path, projects: int) -> tuple[Path, list[Path]]:
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    index: dict[str, list[FileSpec]] = {}
    wheels = []
    for i in range(projects):
        name = f"nb-{i:04d}"
        dist = name.replace("-", "_")
        index[name] = [FileSpec(f"{dist}-1.0.tar.gz", name.encode())]
        (recipes / f"{name}.toml").write_text(
            f'[project]\nname = "{name}"\npythons = ["3.11"]\n'
            f'targets = ["manylinux_2_17_aarch64"]\n[test]\nimports = ["{dist}"]\n'
        )
        wheels.append(make_dummy_wheel(root / "wheels", name, "1.0", tag=TAG))
    write_static_index(root / "upstream", index)
    return recipes, wheels


def upload(url: str, token: str, wheels: list[Path]) -> None:
    def one(wheel: Path) -> None:
        data = {":action": "file_upload", "protocol_version": "1", "filetype": "bdist_wheel"}
        with httpx.Client(auth=("__token__", token), timeout=60) as client:
            response = client.post(
                url + "/legacy/", data=data, files={"content": (wheel.name, wheel.read_bytes())}
            )
        response.raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, wheels))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed:\n{done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # The venv's commands (wheelfarm) by name, for us and for the test helpers we reuse.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        recipes, wheels = make_world(root, args.projects)
        upstream = subprocess.Popen(
            [sys.executable, str(REPO / "tests/support/static_index.py"), str(root / "upstream")],
            stdout=subprocess.PIPE,
            text=True,
        )
        up_url = upstream.stdout.readline().strip()
        data = root / "index"
        token = create_token(data, "bench")
        server = start_server(data, workers=2)
        try:
            upload(server.url, token, wheels)
            env |= {"WHEELFARM_DATA": str(root / "farm"), "WHEELFARM_INDEX_TOKEN": token}
            env["WHEELFARM_CACHE"] = str(root / "cache")  # nothing big is downloaded here
            nightly = [
                "wheelfarm",
                "nightly",
                "--json",
                "--index",
                server.url,
                "--upstream",
                up_url,
            ]
            nightly += ["--ledger", str(root / "ledger.sqlite3"), str(recipes)]
            plan = ["wheelfarm", "plan", "--json", "--index", up_url, "--own-index"]
            plan += [server.url + "/simple/", str(recipes)]
            n_times, p_times = [], []
            for _ in range(args.repeat):
                t, report = timed(nightly, env)
                counts = report["counts"]
                assert counts == {"ours": args.projects}, counts  # a no-op: nothing built
                n_times.append(t)
                t, planned = timed(plan, env)
                assert planned["summary"]["ours"] == args.projects, planned["summary"]
                p_times.append(t)
        finally:
            server.stop()
            upstream.terminate()
    n, p = statistics.median(n_times), statistics.median(p_times)
    print(
        f"no-op nightly over {args.projects} recipes (median of {args.repeat}, load {os.getloadavg()[0]:.1f})"
    )
    print(f"  wheelfarm nightly : {n:6.2f} s   (target < 5 s)")
    print(f"  wheelfarm plan    : {p:6.2f} s   (peer: asking both indexes only)")
    print(f"  nightly / plan    : {n / p:6.2f}x")


if __name__ == "__main__":
    main()
