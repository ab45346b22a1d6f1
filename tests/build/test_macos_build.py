"""macOS arm64 wheels from Linux: real zig, real pip, real delocate over LLVM's Mach-O tools.

Builds share the real cache (zig's cache, build envs); library prefixes and state go to tmp. Nothing
here can run a Mach-O: every result must be "checked, not run" with the reason, proven by the checker.
"""

from __future__ import annotations

import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest
from support.clib import make_linked_sdist, write_wfdemo_library
from support.projects import make_sdist

from builder.build import natives as deps
from builder.build.pipeline import MACOS_NOT_RUN, build_sdist, verify_wheel
from builder.build.toolchain.macos import darwin_pyconfig
from builder.check import check_wheel, codesign, macho
from builder.common.outcome import Outcome
from builder.recipes.recipe import TestSpec

pytestmark = pytest.mark.slow

TARGET = "macosx_11_0_arm64"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))


def members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize(
    ("target", "arch", "zig"),
    [
        (TARGET, "arm64", "aarch64-macos.11.0"),
        ("macosx_10_13_x86_64", "x86_64", "x86_64-macos.10.13"),
    ],
)
def test_c_extension_builds_checked_not_run(
    tmp_path: Path, target: str, arch: str, zig: str
) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    spec = TestSpec(imports=("wf_ext",), call="import wf_ext; assert wf_ext.triangle(3) == 6")
    r = build_sdist(
        sdist,
        project="wf-ext",
        version="1.0.0",
        python="3.11",
        target=target,
        test=spec,
        out_dir=tmp_path / "out",
    )
    assert r.status is Outcome.CHECKED_NOT_RUN and r.message == MACOS_NOT_RUN, r.message
    assert r.wheel is not None and r.wheel.name == f"wf_ext-1.0.0-cp311-cp311-{target}.whl"
    files = members(r.wheel)
    ext = files["wf_ext/_native.cpython-311-darwin.so"]
    ((_, image),) = macho.slices(ext)
    assert image.arch == arch and image.filetype == macho.MH_DYLIB
    report = check_wheel(r.wheel)
    assert report.ok and report.findings == ()
    assert "imported symbols resolved (4 in CPython 3.11" in report.evidence[0]
    log = r.log.read_text()
    assert f"-target {zig}" in Path(log.split("CC=")[1].split()[0]).read_text()
    # zig signs arm64 output ad hoc (the kernel requires it there) and leaves x86_64 unsigned
    signature = "ad-hoc" if arch == "arm64" else "not signed (allowed"
    assert f"verified: wf_ext/_native.cpython-311-darwin.so ({arch}): {signature}" in log
    assert "qemu" not in log  # nothing pretended to run it


def test_linked_library_is_grafted_by_delocate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(_own_cache(tmp_path)))
    src = write_wfdemo_library(tmp_path / "libsrc", token=uuid.uuid4().hex)
    prefix = deps.build_native(deps.NativeSpec("wfdemo", str(src), "make"), None, TARGET)
    assert prefix.path.parent.name == TARGET
    dylib = prefix.path / "lib" / "libwfdemo.1.dylib"
    ((_, lib),) = macho.slices(dylib.read_bytes())
    assert lib.arch == "arm64" and lib.install_name == str(dylib)

    sdist = make_linked_sdist(tmp_path / "sdist")
    r = build_sdist(
        sdist,
        project="wf-linked",
        version="1.0.0",
        python="3.11",
        target=TARGET,
        prefixes=[prefix.path],
        test=TestSpec(imports=("wf_linked",)),
        out_dir=tmp_path / "out",
    )
    assert r.status is Outcome.CHECKED_NOT_RUN and r.message == MACOS_NOT_RUN, (r.message, r.log)
    assert r.grafted == ("wf_linked/.dylibs/libwfdemo.1.dylib",)
    files = members(r.wheel)
    ((data, ext),) = macho.slices(files["wf_linked/_native.cpython-311-darwin.so"])
    assert "@loader_path/.dylibs/libwfdemo.1.dylib" in [d.path for d in ext.dylibs]
    codesign.verify(data, ext)  # install_name_tool's rewrite was re-signed
    report = check_wheel(r.wheel)
    assert report.ok and report.findings == (), report.findings
    assert "2 in the wheel's dylibs" in next(e for e in report.evidence if "_native" in e)
    assert verify_wheel(r.wheel, "3.11", TARGET) == []

    # The same wheel before delocate names the prefix by its absolute path: the checker refuses it.
    raw = make_raw_wheel(r.wheel, files, tmp_path / "raw", dylib)
    problems = verify_wheel(raw, "3.11", TARGET)
    assert any("WF015-macos-load-path" in p and str(dylib) in p for p in problems), problems


def make_raw_wheel(wheel: Path, files: dict[str, bytes], out: Path, dylib: Path) -> Path:
    """The repaired wheel with its extension pointed back at the prefix (as before delocate)."""
    from support.wheels import assemble_wheel

    ext_name = "wf_linked/_native.cpython-311-darwin.so"
    work = out / "ext.so"
    out.mkdir()
    work.write_bytes(files[ext_name])
    from builder.build.toolchain.macho_tools import ensure_llvm

    tool = ensure_llvm()["llvm-install-name-tool"]
    subprocess.run(
        [tool, "-change", "@loader_path/.dylibs/libwfdemo.1.dylib", str(dylib), str(work)],
        check=True,
    )
    keep = {n: d for n, d in files.items() if ".dist-info/" not in n and "/.dylibs/" not in n}
    keep[ext_name] = work.read_bytes()
    return assemble_wheel(
        out, "cp311-cp311-macosx_11_0_arm64", keep, name="wf-linked", version="1.0.0"
    )


def _own_cache(tmp_path: Path) -> Path:
    """A cache of the test's own for library prefixes; zig's cache and build envs are shared."""
    from builder.common.paths import cache_dir

    own = tmp_path / "cache"
    own.mkdir()
    for shared in ("zig", "buildenv", "toolchain"):
        (cache_dir() / shared).mkdir(parents=True, exist_ok=True)
        (own / shared).symlink_to(cache_dir() / shared)
    return own


def test_codesign_stand_in_resigns_and_verifies(tmp_path: Path) -> None:
    from support.macos import EXTENSION, EXTENSION_C
    from support.macos import TARGET as ZIG_TARGET
    from support.native import zig_cc

    from builder.build.toolchain.macho_tools import tools_bin

    so = zig_cc(tmp_path / "x.so", ZIG_TARGET, EXTENSION_C, *EXTENSION)
    data = bytearray(so.read_bytes())
    image = macho.parse(bytes(data))
    text = image.segment("__TEXT")
    data[text.fileoff + text.filesize - 8] ^= 0x01
    so.write_bytes(bytes(data))
    codesign_bin = tools_bin() / "codesign"
    bad = subprocess.run([codesign_bin, "--verify", so], capture_output=True, text=True)
    assert bad.returncode == 1 and "does not match its sha256 hash" in bad.stderr
    subprocess.run([codesign_bin, "--force", "--sign", "-", so], check=True)
    ok = subprocess.run([codesign_bin, "--verify", so], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == ""
    codesign.verify(so.read_bytes(), macho.parse(so.read_bytes()))
    refused = subprocess.run(
        [codesign_bin, "--force", "--sign", "Developer ID", so], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "ad-hoc identity" in refused.stderr
    otool = subprocess.run(
        [tools_bin() / "otool", "-arch", "all", "-m", "-L", so], capture_output=True, text=True
    )
    assert otool.returncode == 0 and "/usr/lib/libSystem.B.dylib" in otool.stdout


def test_darwin_pyconfig_drops_linux_only_features() -> None:
    linux = (
        "#ifndef Py_PYCONFIG_H\n#define Py_PYCONFIG_H\n#define HAVE_EPOLL 1\n#define HAVE_ACCEPT4 1\n"
        "#define HAVE_GCC_ASM_FOR_X87 1\n#define SIZEOF_LONG_DOUBLE 16\n"
        "#define _POSIX_C_SOURCE 200809L\n#define _GNU_SOURCE 1\n#define HAVE_UNISTD_H 1\n"
        "/* #undef HAVE_STRUCT_STAT_ST_BIRTHTIME */\n#endif\n"
    )
    arm = darwin_pyconfig(linux, "arm64")
    for gone in ("HAVE_EPOLL 1", "HAVE_ACCEPT4 1", "HAVE_GCC_ASM_FOR_X87 1", "_POSIX_C_SOURCE 2"):
        assert f"#define {gone}" not in arm
    assert "#define SIZEOF_LONG_DOUBLE 8" in arm and "#define HAVE_UNISTD_H 1" in arm
    assert "#define HAVE_STRUCT_STAT_ST_BIRTHTIME 1" in arm and "#define _DARWIN_C_SOURCE 1" in arm
    intel = darwin_pyconfig(linux, "x86_64")
    assert "#define HAVE_GCC_ASM_FOR_X87 1" in intel and "#define SIZEOF_LONG_DOUBLE 16" in intel


def test_cross_backend_refuses_what_it_cannot_build() -> None:
    from builder.build.backends.cross import CrossBackend

    backend = CrossBackend()
    assert backend.available("3.11", TARGET) is None
    assert "universal2" in (backend.available("3.11", "macosx_11_0_universal2") or "")
