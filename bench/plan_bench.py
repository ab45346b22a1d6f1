"""Plan 500 recipes x 3 versions x 5 Pythons x 2 targets against a local upstream.

    .venv/bin/python bench/plan_bench.py [--projects 500]

The upstream is a static PEP 691 index served by tests/support/static_index.py in its own process (so
client and server do not share a GIL). Printed: cold time (empty HTTP cache), warm time when the index
says max-age=0 (every page revalidated: 304s), warm time when it says max-age=600 (no requests), the HTTP
requests each run made (counted by the client and by the server), and the planner's own CPU time.

Peer, run in the same run: a raw concurrent GET of the same pages with httpx (same concurrency, no cache,
no parsing, no planning): the floor a cold plan cannot beat. cold/peer says how much the planner adds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.static_index import FileSpec, write_static_index  # noqa: E402

from builder.common.httpcache import HttpCache  # noqa: E402
from builder.common.upstream import ACCEPT, IndexClient  # noqa: E402
from builder.plan.planner import load_recipes, plan  # noqa: E402

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
TARGETS = ["manylinux_2_28_aarch64", "macosx_11_0_arm64"]


def make_world(root: Path, projects: int) -> Path:
    """A synthetic upstream: 4 releases per project (3 are planned), a mix of wheel coverage."""
    index: dict[str, list[FileSpec]] = {}
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    for i in range(projects):
        name = f"proj-{i:04d}"
        dist = name.replace("-", "_")
        files = []
        for v in ("1.0.0", "1.1.0", "1.2.0", "2.0.0"):
            files.append(FileSpec(f"{dist}-{v}.tar.gz", f"{name} {v}".encode()))
            kind = i % 4
            if kind == 1:  # x86_64 only: everything arm64 must be built
                for py in ("cp39", "cp310", "cp311", "cp312", "cp313"):
                    tag = f"{py}-{py}-manylinux_2_17_x86_64.manylinux2014_x86_64"
                    files.append(FileSpec(f"{dist}-{v}-{tag}.whl", tag.encode()))
            elif kind == 2:  # aarch64 for older Pythons plus universal2
                for py in ("cp39", "cp310", "cp311"):
                    for plat in (
                        "manylinux_2_17_aarch64.manylinux2014_aarch64",
                        "macosx_10_9_universal2",
                    ):
                        tag = f"{py}-{py}-{plat}"
                        files.append(FileSpec(f"{dist}-{v}-{tag}.whl", tag.encode()))
            elif kind == 3:  # abi3
                tag = "cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64"
                files.append(FileSpec(f"{dist}-{v}-{tag}.whl", tag.encode()))
        index[name] = files
        (recipes / f"{name}.toml").write_text(
            f'[project]\nname = "{name}"\nlatest = 3\npythons = {json.dumps(PYTHONS)}\n'
            f'targets = {json.dumps(TARGETS)}\n[test]\nimports = ["{dist}"]\n'
        )
    write_static_index(root / "index", index)
    return recipes


class Server:
    def __init__(self, root: Path, cache_control: str) -> None:
        script = REPO / "tests" / "support" / "static_index.py"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(root), "--cache-control", cache_control],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout
        self.url = self.proc.stdout.readline().strip()

    def requests(self) -> int:
        stats = httpx.get(self.url.replace("/simple/", "/_stats")).json()
        return sum(stats.values())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def run_plan(recipes_dir: Path, url: str, cache: HttpCache) -> dict[str, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    recipes, errors = load_recipes([recipes_dir])
    assert not errors, errors[:3]
    with IndexClient(url, cache=cache, max_workers=16) as client:
        result = plan(recipes, client)
        requests = client.stats.requests
    assert not result.errors, result.errors[:3]
    return {
        "wall": time.perf_counter() - wall0,
        "process_cpu": time.process_time() - cpu0,
        "planner_cpu": result.cpu_seconds,
        "requests": requests,
        "jobs": len(result.jobs),
        "cells": len(result.decisions),
    }


def raw_fetch(url: str, projects: int) -> float:
    start = time.perf_counter()
    with httpx.Client(limits=httpx.Limits(max_connections=16)) as client:

        def get(i: int) -> int:
            return len(client.get(f"{url}proj-{i:04d}/", headers={"Accept": ACCEPT}).content)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(get, range(projects)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=500)
    args = parser.parse_args()
    n = args.projects
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        recipes_dir = make_world(root, n)
        print(f"world: {n} projects x 4 releases written in {time.perf_counter() - t:.1f}s")
        print(f"plan: {n} recipes x 3 versions x {len(PYTHONS)} Pythons x {len(TARGETS)} targets")
        rows = []
        for cc in ("max-age=0", "max-age=600"):
            server = Server(root / "index", cc)
            try:
                peer = raw_fetch(server.url, n)
                before = server.requests()
                cache = HttpCache(root / f"cache-{cc}")
                cold = run_plan(recipes_dir, server.url, cache)
                mid = server.requests()
                warm = run_plan(recipes_dir, server.url, cache)
                after = server.requests()
            finally:
                server.close()
            rows.append((f"cold ({cc})", cold, mid - before))
            rows.append((f"warm ({cc})", warm, after - mid))
            rows.append((f"peer: raw GET x{n} ({cc})", {"wall": peer}, n))
            print(f"  cold/peer ratio ({cc}): {cold['wall'] / peer:.2f}x")
        print(
            f"{'run':34} {'wall s':>7} {'proc cpu s':>10} {'planner cpu s':>13} {'requests':>8} {'server saw':>10} {'jobs':>6}"
        )
        for label, r, seen in rows:
            print(
                f"{label:34} {r['wall']:7.2f} {r.get('process_cpu', float('nan')):10.2f} "
                f"{r.get('planner_cpu', float('nan')):13.2f} {r.get('requests', n):8.0f} {seen:10d} "
                f"{r.get('jobs', 0):6.0f}"
            )
        cells = rows[0][1]["cells"]
        print(f"cells decided per run: {cells:.0f}")


if __name__ == "__main__":
    main()
