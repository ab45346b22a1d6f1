"""`uv lock` of a 50-dependency project through the overlay against the same lock straight from the
upstream index, both local.

    .venv/bin/python bench/overlay_lock_bench.py [--deps 50] [--versions 5] [--runs 5]

The upstream is a static PEP 691 index (tests/support/static_index.py, Cache-Control max-age=600,
PEP 658 metadata) with `--deps` projects of `--versions` versions each (an x86_64 wheel per version);
the farm (`wheelfarm serve --upstream <that index>`) holds an aarch64 wheel of every tenth project's
newest version. Each run is `uv lock` with an empty uv cache, so every page and metadata file is
fetched; the overlay's own upstream cache is cold on its first run and warm after. Prints each time
and the median ratio overlay/upstream (target: 1.2x or less).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import create_token, start_server, twine_upload  # noqa: E402
from support.projects import make_dummy_wheel  # noqa: E402
from support.static_index import FileSpec, StaticIndexServer, write_static_index  # noqa: E402

X86 = "cp311-cp311-manylinux_2_17_x86_64"
ARM = "cp311-cp311-manylinux_2_17_aarch64"


def uv_lock(project: Path, index: str, work: Path) -> float:
    (project / "uv.lock").unlink(missing_ok=True)
    cache = work / "uv-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "XDG_CONFIG_HOME": str(work / "cfg")}
    t0 = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("uv")), "lock", "-q", "--default-index", index],
        cwd=project,
        env=env,
        check=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deps", type=int, default=50)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # start_server and twine_upload run `wheelfarm` and `twine` by name: this venv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    print(f"load average at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="wheelfarm-overlay-bench-") as tmp:
        work = Path(tmp)
        names = [f"dep-{i:03d}" for i in range(args.deps)]
        projects: dict[str, list[FileSpec]] = {}
        farm = []
        for i, name in enumerate(names):
            wheels = [
                make_dummy_wheel(work / "up", name, f"1.{v}", tag=X86) for v in range(args.versions)
            ]
            projects[name] = [FileSpec(w.name, w.read_bytes(), core_metadata=True) for w in wheels]
            if i % 10 == 0:
                farm.append(
                    make_dummy_wheel(work / "farm", name, f"1.{args.versions - 1}", tag=ARM)
                )
        write_static_index(work / "upstream", projects)
        app = work / "app"
        app.mkdir()
        deps = ", ".join(f'"{n}"' for n in names)
        (app / "pyproject.toml").write_text(
            f'[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
            f"dependencies = [{deps}]\n"
        )
        with StaticIndexServer(work / "upstream", cache_control="max-age=600, public") as up:
            server = start_server(
                work / "data",
                upstream=up.url,
                env={"WHEELFARM_CACHE": str(work / "cache")},
            )
            try:
                token = create_token(work / "data", "bench")
                result = twine_upload(server.url, token, *farm)
                if result.returncode:
                    raise SystemExit(result.stdout + result.stderr)
                overlay = f"{server.url}/overlay/simple/"
                times: dict[str, list[float]] = {"upstream": [], "overlay": []}
                for run in range(args.runs):
                    for label, index in (("upstream", up.url), ("overlay", overlay)):
                        times[label].append(uv_lock(app, index, work))
                    print(
                        f"run {run + 1}: upstream {times['upstream'][-1]:.2f} s, "
                        f"overlay {times['overlay'][-1]:.2f} s"
                        + (" (overlay's upstream cache cold)" if run == 0 else ""),
                        flush=True,
                    )
                lock = (app / "uv.lock").read_text()
                assert all(f.name in lock for f in farm), "the farm's wheels are not in the lock"
            finally:
                server.stop()
    warm = {k: statistics.median(v[1:] or v) for k, v in times.items()}
    print(
        f"uv lock, {args.deps} dependencies x {args.versions} versions, empty uv cache, median of "
        f"runs 2-{args.runs}: upstream {warm['upstream']:.2f} s, overlay {warm['overlay']:.2f} s, "
        f"ratio {warm['overlay'] / warm['upstream']:.2f}x; first run (cold overlay cache) "
        f"{times['overlay'][0] / times['upstream'][0]:.2f}x"
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
