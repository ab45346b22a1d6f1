"""Cross (zig, aarch64) against native (gcc, x86_64) wheel builds of five real sdists, in one run.

    .venv/bin/python bench/build_bench.py [--repeat N] [--python 3.11] [--json]

Each sdist (pinned by version and sha256, downloaded once into the wheelfarm cache) is unpacked
afresh for every run and built with the same cached build environment (its build requirements in a
venv of the host CPython) by the same command, `pip wheel --no-deps --no-build-isolation`:
- native: the host's own sysconfig (gcc, x86_64);
- cross: zig + the generated aarch64 sysconfigdata (what `wheelfarm build` runs).
Only that command is timed. A warm-up build per sdist and column runs first (zig's cache, build envs),
so the figures are warm-cache figures. Every wheel must be a platform wheel of the right
architecture, or the run fails. Each result is the median of `--repeat` runs; the summary line is the
median of the per-sdist ratios cross/native (target: <= 1.3).

More columns plug in through COLUMNS: a function (sdist, workdir) -> wheel path whose run time is
measured as a whole. "emulated" (bench/emulated_column.py) is the emulated backend's build: the same
command natively for aarch64 in the Debian arm64 chroot under qemu-user (what cibuildwheel + QEMU
users get); its summary line is the median of the per-sdist ratios emulated/cross (target: >= 5).
"cross-macos" is the same cross build for macosx_11_0_arm64 (zig for aarch64-macos.11.0, the darwin
sysconfigdata; pyyaml's libyaml cross-built from Debian's source with autotools for the Mac by
builder.build.natives): its wheels must hold arm64 Mach-O extensions that pass the checker's load-time checks;
its ratio column is cross-macos/cross.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packaging.utils import parse_wheel_filename

from builder.build.backends.cross import (
    build_env,
    build_requires,
    cross_build_environment,
    pip_wheel_command,
    venv_environment,
)
from builder.build.toolchain.host import ensure_host_packages
from builder.common.buildlog import BuildLog
from builder.common.fetch import fetch_sdist
from builder.common.paths import cache_dir
from builder.common.sdist import unpack as unpack_sdist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulated_column import run_emulated

TARGET = "manylinux_2_17_aarch64"
MACOS_TARGET = "macosx_11_0_arm64"
# sdists the cross-macos column cannot build yet, and why (README: "macOS arm64 wheels from Linux")
MACOS_SKIP = {"netifaces": "its setup.py probes answer for the Linux host (netpacket/packet.h)"}
FILES = "https://files.pythonhosted.org/packages"


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    url: str
    sha256: str
    # Variables both builds get: make optional extensions mandatory, so a failed compile
    # cannot hide as a fast pure-Python "build".
    env: tuple[tuple[str, str], ...] = ()


SDISTS = (
    Sdist(
        "markupsafe",
        "3.0.4",
        f"{FILES}/38/9b/e422a865e1d5d57d0e509b4e0bf1c1a70a7f6382c29a5aa428df994c8bc8/markupsafe-3.0.4.tar.gz",
        "2e9ad7dd851bf45fab9f75cbff4cb493fee9979e8d8c7c9c3ee119022518edd6",
    ),
    Sdist(
        "crcmod",
        "1.7",
        f"{FILES}/6b/b0/e595ce2a2527e169c3bcd6c33d2473c1918e0b7f6826a043ca1245dd4e5b/crcmod-1.7.tar.gz",
        "dc7051a0db5f2bd48665a990d3ec1cc305a466a77358ca4492826f41f283601e",
    ),
    Sdist(
        "netifaces",
        "0.11.0",
        f"{FILES}/a6/91/86a6eac449ddfae239e93ffc1918cf33fd9bab35c04d1e963b311e347a73/netifaces-0.11.0.tar.gz",
        "043a79146eb2907edf439899f262b3dfe41717d34124298ed281139a8b93ca32",
    ),
    Sdist(
        "msgpack",
        "1.2.4",
        f"{FILES}/cc/52/1ec7ead2c7528bf3d1db73e886fa4df10f9e6f0eb7854a448b7090cfcef7/msgpack-1.2.4.tar.gz",
        "475c44e12f2a5de766a8448783f149c9b33f3f49b88953c6cd739a77d93c732c",
    ),
    Sdist(
        "pyyaml",
        "6.0.3",
        f"{FILES}/05/8e/961c0007c59b8dd7729d542c61a4d537767a59645b82a0b521206e1e25c2/pyyaml-6.0.3.tar.gz",
        "d76623373421df22fb4cf8817020cbb7ef15c725b9d5e45f17e189bfc384190f",
        (("PYYAML_FORCE_CYTHON", "1"), ("PYYAML_FORCE_LIBYAML", "1")),
    ),
)


def libyaml_env(kind: str) -> dict[str, str]:
    """pyyaml's C extension needs libyaml: the host's -dev package natively, Debian's arm64 one cross,
    Debian's source cross-built for the Mac (builder.build.natives, autotools) for cross-macos."""
    if kind == "native":
        ensure_host_packages(["libyaml-dev"])
        return {}
    if kind == "cross-macos":
        from builder.build import natives

        spec = natives.NativeSpec("libyaml", "debian:libyaml", "autotools")
        prefix = natives.build_native(spec, None, MACOS_TARGET)
        return {"CPPFLAGS": f"-I{prefix.path / 'include'}", "LDFLAGS": f"-L{prefix.path / 'lib'}"}
    from builder.build.toolchain.debian import sysroot

    root = sysroot("bookworm", ["libyaml-dev"], "arm64")
    # -idirafter: yaml.h is found, but never ahead of zig's glibc 2.17 headers.
    return {
        "CPPFLAGS": f"-idirafter {root / 'usr/include'}",
        "LDFLAGS": f"-L{root / 'usr/lib/aarch64-linux-gnu'}",
    }


@dataclass
class Prepared:
    sdist: Sdist
    path: Path
    venv_python: Path


def prepare(sd: Sdist, python: str, log: BuildLog) -> Prepared:
    path = fetch_sdist(sd.url, sd.sha256)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        src = unpack_sdist(path, Path(tmp))
        venv_python = build_env(python, build_requires(src), log)
    return Prepared(sd, path, venv_python)


def pip_wheel(
    prep: Prepared, workdir: Path, env: dict[str, str], log: BuildLog
) -> tuple[Path, float]:
    src = unpack_sdist(prep.path, workdir / "src")
    dist = workdir / "dist"
    start = time.perf_counter()
    log.run(
        pip_wheel_command(prep.venv_python, src, dist),
        step=f"bench {prep.sdist.name}",
        env=env,
        cwd=workdir,
    )
    elapsed = time.perf_counter() - start
    (wheel,) = dist.glob("*.whl")
    return wheel, elapsed


def run_native(prep: Prepared, python: str, workdir: Path, log: BuildLog) -> tuple[Path, float]:
    env = venv_environment(prep.venv_python) | dict(prep.sdist.env)
    if prep.sdist.name == "pyyaml":
        env |= libyaml_env("native")
    return pip_wheel(prep, workdir, env, log)


def run_cross(prep: Prepared, python: str, workdir: Path, log: BuildLog) -> tuple[Path, float]:
    extra = dict(prep.sdist.env)
    if prep.sdist.name == "pyyaml":
        extra |= libyaml_env("cross")
    env = cross_build_environment(prep.venv_python, python, TARGET, extra)
    return pip_wheel(prep, workdir, env, log)


def run_cross_macos(
    prep: Prepared, python: str, workdir: Path, log: BuildLog
) -> tuple[Path, float]:
    extra = dict(prep.sdist.env)
    if prep.sdist.name == "pyyaml":
        extra |= libyaml_env("cross-macos")
    env = cross_build_environment(prep.venv_python, python, MACOS_TARGET, extra)
    return pip_wheel(prep, workdir, env, log)


Runner = Callable[[Prepared, str, Path, BuildLog], tuple[Path, float]]
# column name -> (runner, architecture its wheels must have)
COLUMNS: dict[str, tuple[Runner, str]] = {
    "native": (run_native, "x86_64"),
    "cross": (run_cross, "aarch64"),
    "emulated": (run_emulated, "aarch64"),
    "cross-macos": (run_cross_macos, "arm64"),
}


def check_wheel_arch(wheel: Path, arch: str) -> None:
    tags = parse_wheel_filename(wheel.name)[3]
    if any(t.platform == "any" for t in tags):
        raise SystemExit(f"{wheel.name}: a pure wheel: the extension was not built")
    with zipfile.ZipFile(wheel) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so")]
    suffix = "-darwin.so" if arch == "arm64" else f"-{arch}-linux-gnu.so"
    if not sos or not all(n.endswith(suffix) for n in sos):
        raise SystemExit(f"{wheel.name}: extensions {sos} are not all {arch}")
    if arch == "arm64":  # Mach-O: arm64, signed, symbols and load paths resolve (the gate's check)
        from builder.check import check_wheel

        report = check_wheel(wheel)
        if not report.ok or not all(b.archs == {"arm64"} for b in report.binaries):
            raise SystemExit(f"{wheel.name}: fails the checker: {report.findings}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.11")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per sdist and column")
    parser.add_argument("--only", nargs="*", help="sdist names to run (default: all five)")
    parser.add_argument("--columns", nargs="*", default=list(COLUMNS), help="columns to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sdists = [s for s in SDISTS if not args.only or s.name in args.only]
    log_path = cache_dir() / "bench" / "build_bench.log"
    log_path.unlink(missing_ok=True)
    rows = []
    with BuildLog(log_path) as log:
        for sd in sdists:
            prep = prepare(sd, args.python, log)
            times: dict[str, float] = {}
            for col in args.columns:
                if col == "cross-macos" and sd.name in MACOS_SKIP:
                    print(f"{sd.name}: cross-macos skipped: {MACOS_SKIP[sd.name]}", flush=True)
                    continue
                runner, arch = COLUMNS[col]
                samples = []
                for i in range(args.repeat + 1):  # run 0 warms caches and is not counted
                    work = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="bench-"))
                    try:
                        wheel, elapsed = runner(prep, args.python, work, log)
                        check_wheel_arch(wheel, arch)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    if i:
                        samples.append(elapsed)
                times[col] = statistics.median(samples)
            row = {"sdist": f"{sd.name} {sd.version}", **{c: round(t, 2) for c, t in times.items()}}
            if "native" in times and "cross" in times:
                row["cross/native"] = round(times["cross"] / times["native"], 2)
            if "emulated" in times and "cross" in times:
                row["emulated/cross"] = round(times["emulated"] / times["cross"], 2)
            if "cross-macos" in times and "cross" in times:
                row["cross-macos/cross"] = round(times["cross-macos"] / times["cross"], 2)
            rows.append(row)
            print(json.dumps(row) if args.json else _line(row, args.columns), flush=True)
    ratios = [r["cross/native"] for r in rows if "cross/native" in r]
    median = round(statistics.median(ratios), 2) if ratios else None
    emu = [r["emulated/cross"] for r in rows if "emulated/cross" in r]
    median_emu = round(statistics.median(emu), 2) if emu else None
    if args.json:
        print(
            json.dumps(
                {
                    "rows": rows,
                    "median_cross_native": median,
                    "median_emulated_cross": median_emu,
                    "log": str(log_path),
                }
            )
        )
    else:
        print(
            f"median cross/native: {median} (target <= 1.3); cores: {os.cpu_count()}; log: {log_path}"
        )
        if median_emu is not None:
            print(f"median emulated/cross: {median_emu} (target >= 5)")
        print(_markdown(rows, args.columns, median, median_emu))


def _line(row: dict, columns: list[str]) -> str:
    cells = [f"{row['sdist']:<20}"] + [f"{c} {row[c]:6.2f}s" for c in columns if c in row]
    if "cross/native" in row:
        cells.append(f"cross/native {row['cross/native']:.2f}")
    if "emulated/cross" in row:
        cells.append(f"emulated/cross {row['emulated/cross']:.2f}")
    if "cross-macos/cross" in row:
        cells.append(f"cross-macos/cross {row['cross-macos/cross']:.2f}")
    return "  ".join(cells)


def _markdown(
    rows: list[dict], columns: list[str], median: float | None, median_emu: float | None
) -> str:
    """The results as a Markdown table (the README publishes it)."""
    ratios = [
        r
        for r in ("cross/native", "emulated/cross", "cross-macos/cross")
        if any(r in row for row in rows)
    ]
    head = ["sdist", *(f"{c} (s)" for c in columns), *ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["sdist"], *(f"{row[c]:.2f}" if c in row else "n/a" for c in columns)]
        cells += [f"{row[r]:.2f}" if r in row else "" for r in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    macos = [row["cross-macos/cross"] for row in rows if "cross-macos/cross" in row]
    medians = {
        "cross/native": median,
        "emulated/cross": median_emu,
        "cross-macos/cross": round(statistics.median(macos), 2) if macos else None,
    }
    foot = ["**median**", *([""] * len(columns)), *(f"**{medians[r]:.2f}**" for r in ratios)]
    lines.append("| " + " | ".join(foot) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
