"""How fast is the wheel checker next to `python -m zipfile -t` on the same ~200 MB wheel?

Builds (once, under the cache folder) a manylinux wheel of many files: real ELF extension modules
taken from this virtualenv and repeated under different names, Python-like text files and
incompressible data files, with a correct RECORD. Then times, in the same run and on the warm page
cache, the command `wheelfarm check WHEEL` and the command `python -m zipfile -t WHEEL` (which
inflates and CRC-checks every member; the checker must do at least that much to hash RECORD).

    .venv/bin/python bench/check_bench.py [--size-mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

from builder.check import check_wheel
from builder.check.wheelzip import scan
from builder.common.paths import cache_dir

TAG = "cp311-cp311-manylinux_2_34_x86_64"  # the venv's own ELF files need up to glibc 2.34


def venv_elves() -> list[Path]:
    """Real ELF extension modules that the installed wheels brought along."""
    site = Path(sysconfig.get_paths()["platlib"])
    return sorted(p for p in site.rglob("*.so") if p.read_bytes()[:4] == b"\x7fELF")


def build_wheel(out: Path, size_mb: int, elf_share: float) -> Path:
    folder = out / f"{size_mb}mb-{elf_share:g}elf"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"benchwheel-1.0-{TAG}.whl"
    if path.exists():
        return path
    rng = random.Random(42)
    text = Path(zipfile.__file__).read_bytes()  # realistic Python source, compresses about 4x
    files: list[tuple[str, bytes]] = []
    budget = size_mb << 20
    elves = [p.read_bytes() for p in venv_elves()]
    elf_budget = int(budget * elf_share)
    copy = 0
    while elf_budget > 0 and elves:
        data = elves[copy % len(elves)]
        files.append((f"benchwheel/native/m{copy}.cpython-311-x86_64-linux-gnu.so", data))
        elf_budget -= len(data)
        copy += 1
    used = sum(len(d) for _, d in files)
    i = 0
    while used < budget:
        if i % 10 == 0:  # one in ten is an incompressible 1 MiB blob
            data = rng.randbytes(1 << 20)
            name = f"benchwheel/data/blob{i}.bin"
        else:
            start = rng.randrange(len(text) // 2)
            data = text[start : start + rng.randrange(2_000, 60_000)]
            name = f"benchwheel/pkg{i % 50}/mod{i}.py"
        files.append((name, data))
        used += len(data)
        i += 1
    dist_info = "benchwheel-1.0.dist-info"
    files.append(
        (
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: check_bench\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode(),
        )
    )
    files.append(
        (f"{dist_info}/METADATA", b"Metadata-Version: 2.1\nName: benchwheel\nVersion: 1.0\n")
    )
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow((name, f"sha256={digest}", len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    files.append((f"{dist_info}/RECORD", rows.getvalue().encode()))
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            zf.writestr(name, data)
    tmp.rename(path)
    return path


def best_of(repeat: int, cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Best wall time and best CPU time (user + system, all threads) of `repeat` runs of `cmd`."""
    best = best_cpu = float("inf")
    done = None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best_cpu = min(best_cpu, cpu)
    assert done is not None
    return best, best_cpu, done


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process) of fn()."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mb", type=int, default=300, help="uncompressed payload (300 MB: a ~200 MB wheel)"
    )
    parser.add_argument(
        "--elf-share",
        type=float,
        default=0.1,
        help="fraction of the payload that is ELF extension modules (auditwheel analyses each)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best counts")
    args = parser.parse_args()
    out = cache_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out, args.size_mb, args.elf_share)
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
    size_mb = wheel.stat().st_size / 1e6
    payload_mb = sum(i.file_size for i in infos) / 1e6
    wheel.read_bytes()  # warm the page cache for both contenders
    print(f"wheel: {wheel} ({size_mb:.0f} MB on disk, {payload_mb:.0f} MB in {len(infos)} files)")
    print(f"cpus: {os.cpu_count()}; figures are noisy when other jobs share the machine")

    wheelfarm = str(Path(sys.executable).with_name("wheelfarm"))
    t_check, cpu_check, done = best_of(args.repeat, [wheelfarm, "check", "--json", str(wheel)])
    if done.returncode == 2:
        sys.exit(f"wheelfarm check failed: {done.stdout}{done.stderr}")
    findings = json.loads(done.stdout)["reports"][0]["findings"]
    t_zip, cpu_zip, zdone = best_of(
        args.repeat, [sys.executable, "-m", "zipfile", "-t", str(wheel)]
    )
    if zdone.returncode != 0:
        sys.exit(f"zipfile -t failed: {zdone.stderr}")

    print(f"{'command':<32} {'wall s':>7} {'CPU s':>6} {'MB/s (file)':>12} {'MB/s (payload)':>15}")
    for label, t, cpu in (
        ("wheelfarm check --json WHEEL", t_check, cpu_check),
        ("python -m zipfile -t WHEEL", t_zip, cpu_zip),
    ):
        print(f"{label:<32} {t:>7.2f} {cpu:>6.2f} {size_mb / t:>12.0f} {payload_mb / t:>15.0f}")
    print(
        f"checker / zipfile -t: wall {t_check / t_zip:.2f}, CPU {cpu_check / cpu_zip:.2f} "
        "(target: wall <= 1.00)"
    )

    # In-process, the part that reads every byte: the checker's hashing pass against testzip(); and
    # the whole check_wheel() call, whose difference to the pass is the judging of the binaries.
    with zipfile.ZipFile(wheel) as zf:
        zips = [_timed(zf.testzip) for _ in range(args.repeat)]
        scans = [_timed(lambda: scan(wheel, infos, {})) for _ in range(args.repeat)]
    checks = [_timed(lambda: check_wheel(wheel)) for _ in range(args.repeat)]
    t_testzip, c_testzip = min(t for t, _ in zips), min(c for _, c in zips)
    t_scan, c_scan = min(t for t, _ in scans), min(c for _, c in scans)
    t_whole = min(t for t, _ in checks)
    elves = sum(1 for i in infos if i.filename.endswith(".so"))
    print(
        f"in-process: hashing pass (sha256 + CRC of every member) wall {t_scan:.2f} s "
        f"CPU {c_scan:.2f} s; ZipFile.testzip() wall {t_testzip:.2f} s CPU {c_testzip:.2f} s; "
        f"wall ratio {t_scan / t_testzip:.2f}"
    )
    print(
        f"in-process: check_wheel() wall {t_whole:.2f} s: the hashing pass (which also writes out "
        f"the {elves} ELF files) plus judging the binaries; the command adds its imports"
    )
    print(
        f"checker findings on the bench wheel: {len(findings)} {sorted({f['rule'] for f in findings})}"
    )


if __name__ == "__main__":
    main()
