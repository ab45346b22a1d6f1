"""The emulated backend: a Debian arm64 chroot entered through a private binfmt_misc under qemu.

The root filesystem and the build envs live in the real cache (CI reuses them); state goes to tmp.
Everything runs for real: unshare, binfmt_misc, qemu-aarch64-static, Debian's arm64 gcc and CPython,
auditwheel, the arm64 interpreter testing the wheel.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from support.projects import make_generator_sdist, make_sdist

from builder.build.backends.emulated import EmulatedBackend, build_requires, build_script
from builder.build.pipeline import BuildResult, build_sdist, verify_wheel
from builder.build.toolchain.namespace import (
    check_support,
    ensure_qemu_static,
    enter_script,
    kernel_version,
    run_in_rootfs,
)
from builder.build.toolchain.rootfs import RootfsError, packages, rootfs, suite_for
from builder.common.buildlog import BuildError, BuildLog
from builder.common.outcome import Outcome
from builder.recipes.recipe import BuildOptions, TestSpec

TARGET = "manylinux_2_17_aarch64"
HOST_BINFMT = Path("/proc/sys/fs/binfmt_misc")


def host_binfmt() -> dict[str, str]:
    """Every entry of the host's binfmt_misc (empty when it is not even mounted)."""
    if not HOST_BINFMT.is_dir():
        return {}
    return {p.name: p.read_text(errors="replace") for p in sorted(HOST_BINFMT.iterdir())}


def host_runs_aarch64() -> bool:
    """Does the host itself run aarch64 programs (a binfmt handler registered outside wheelfarm)?"""
    return any("b7 00" in t or "b700" in t for t in host_binfmt().values())


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))


# ---------------------------------------------------------------------------------------------
# Fast: what the pieces say, no chroot


def test_kernel_version_parsing() -> None:
    assert kernel_version("6.18.44-fc-v769") == (6, 18)
    assert kernel_version("6.1.0-18-amd64") == (6, 1)
    assert kernel_version("garbage") == (0, 0)


def test_python_versions_map_to_debian_suites() -> None:
    assert suite_for("3.11") == "bookworm" and suite_for("3.13") == "trixie"
    with pytest.raises(RootfsError, match=r"no Debian suite ships an arm64 Python 3\.12"):
        suite_for("3.12")
    assert {"gcc", "g++", "make", "libc6-dev", "python3.11-dev", "python3.11-venv"} <= set(
        packages("3.11")
    )


def test_backend_refuses_what_it_cannot_build() -> None:
    backend = EmulatedBackend()
    assert "3.12" in (backend.available("3.12", TARGET) or "")
    assert "manylinux aarch64 only" in (backend.available("3.11", "macosx_11_0_arm64") or "")
    assert "manylinux aarch64 only" in (backend.available("3.11", "manylinux_2_17_x86_64") or "")


def test_enter_script_uses_a_private_binfmt_and_a_read_only_tree(tmp_path: Path) -> None:
    script = enter_script(tmp_path, ["true"], binds={"/work": tmp_path})
    lines = script.splitlines()
    mount = lines.index("mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc")
    register = next(i for i, ln in enumerate(lines) if "binfmt_misc/register" in ln)
    assert mount < register  # registered into the namespace's own instance, never the host's
    assert ":/usr/bin/qemu-aarch64-static:F' > /proc/sys/fs/binfmt_misc/register" in lines[register]
    assert f"mount -o remount,bind,ro {tmp_path}" in lines
    assert lines[-1].startswith(f"exec chroot {tmp_path} ")


def test_build_requirements_follow_pep_517_defaults(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not appear to be a Python project"):
        build_requires(tmp_path)
    (tmp_path / "setup.py").write_text("")
    assert build_requires(tmp_path) == ["setuptools>=40.8.0"]
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["cython>=3", "numpy"]\n')
    assert build_requires(tmp_path) == ["cython>=3", "numpy"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert build_requires(tmp_path) == ["setuptools>=40.8.0"]


def test_build_script_passes_before_build_and_config_settings() -> None:
    options = BuildOptions(
        before_build="echo {project}", config_settings={"--build-option": ("--a", "--b")}
    )
    script = build_script("3.11", options, "/work/src/x-1")
    assert "echo /work/src/x-1" in script
    assert "--config-settings=--build-option=--a --config-settings=--build-option=--b ." in script
    assert "--no-index" in script and "--no-build-isolation" in script


def test_this_machine_supports_the_emulated_backend() -> None:
    # The machine this project runs on (kernel >= 6.7, user namespaces allowed) must say yes once
    # qemu-user-static is installed; `wheelfarm doctor` reports the same object.
    ensure_qemu_static()
    support = check_support()
    assert support.ok, support.reasons
    assert any("binfmt_misc" in d for d in support.details)


# ---------------------------------------------------------------------------------------------
# Slow: the real chroot and real builds


@pytest.fixture(scope="session")
def host_binfmt_before() -> dict[str, str]:
    return host_binfmt()


@pytest.fixture(scope="session")
def bookworm(host_binfmt_before: dict[str, str]) -> Path:
    ensure_qemu_static()
    return rootfs("3.11")


@pytest.mark.slow
def test_chroot_runs_aarch64_natively_and_leaves_the_host_alone(
    bookworm: Path, tmp_path: Path, host_binfmt_before: dict[str, str]
) -> None:
    (tmp_path / "hello.c").write_text(
        '#include <stdio.h>\nint main(void) { printf("hello from %d-bit\\n", (int)sizeof(void*) * 8); }\n'
    )
    script = (
        "uname -m; cc -O2 -o hello hello.c && ./hello; python3 -c 'import platform; "
        "print(platform.machine())'; cat /proc/sys/fs/binfmt_misc/wheelfarm-aarch64 || true; "
        "touch /usr/wheelfarm-was-here 2>&1 || true; touch /work/written"
    )
    proc = run_in_rootfs(
        bookworm, ["/bin/sh", "-c", script], binds={"/work": tmp_path}, cwd="/work"
    )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0] == "aarch64" and lines[1] == "hello from 64-bit" and lines[2] == "aarch64"
    assert "interpreter /usr/bin/qemu-aarch64-static" in proc.stdout and "flags: F" in proc.stdout
    assert "Read-only file system" in proc.stdout  # the cached tree cannot be changed by a build
    assert not (bookworm / "usr/wheelfarm-was-here").exists()
    assert (tmp_path / "written").exists() and (tmp_path / "hello").read_bytes()[18] == 183
    # Nothing registered (or mounted) on the host.
    assert host_binfmt() == host_binfmt_before
    assert "wheelfarm-aarch64" not in host_binfmt()


@pytest.mark.slow
def test_rootfs_is_cached_with_what_maintainer_scripts_would_have_made(bookworm: Path) -> None:
    assert rootfs("3.11") == bookworm  # second call: the cache, no work
    assert (bookworm / ".complete").exists()
    assert (bookworm / "usr/bin/cc").readlink() == Path("gcc")  # update-alternatives
    assert (bookworm / "usr/bin/python3").readlink() == Path("python3.11")
    assert (bookworm / "etc/passwd").read_text().startswith("root:*:0:0:")  # base-passwd
    assert list((bookworm / "usr/lib/python3.11/__pycache__").glob("os.cpython-311*.pyc"))


@pytest.fixture(scope="session")
def emulated_result(bookworm: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("emu")
    sdist = make_sdist(root / "sdist", "emu-ext", c_extension=True)
    call = (
        "import emu_ext; assert emu_ext.triangle(10) == 55, emu_ext.triangle(10); "
        "assert emu_ext.machine() == 'aarch64', emu_ext.machine()"
    )
    return build_sdist(
        sdist,
        project="emu-ext",
        version="1.0.0",
        python="3.11",
        target=TARGET,
        options=BuildOptions(backend="emulated"),
        test=TestSpec(imports=("emu_ext", "emu_ext._native"), call=call),
        out_dir=root / "out",
        log_dir=root / "logs",
    )


@pytest.mark.slow
def test_emulated_build_is_repaired_checked_and_runs_under_qemu(
    emulated_result: BuildResult, host_binfmt_before: dict[str, str]
) -> None:
    r = emulated_result
    assert r.status == Outcome.TESTED, r.message
    assert r.backend == "emulated"
    assert r.wheel is not None and "cp311-cp311-manylinux_2_17_aarch64" in r.tags
    assert verify_wheel(r.wheel, "3.11", TARGET) == []
    with zipfile.ZipFile(r.wheel) as zf:
        assert [n for n in zf.namelist() if n.endswith(".so")] == [
            "emu_ext/_native.cpython-311-aarch64-linux-gnu.so"
        ]
    log = r.log.read_text()
    assert "compile (emulated)" in log and "\n+ uname -m\naarch64\n" in log
    assert "wheelfarm-test-ok aarch64 3.11" in log  # the test ran the wheel on arm64 CPython
    assert host_binfmt() == host_binfmt_before


@pytest.mark.slow
def test_cross_failure_falls_back_to_emulated(
    bookworm: Path, tmp_path: Path, host_binfmt_before: dict[str, str]
) -> None:
    if host_runs_aarch64():
        pytest.skip("this host runs aarch64 programs itself: the cross build would not fail")
    sdist = make_generator_sdist(tmp_path / "sdist", "emu-gen")
    call = (
        "import emu_gen, emu_gen._gen as g; assert emu_gen.triangle(10) == 55; "
        "assert g.generated_on() == 'aarch64', g.generated_on()"
    )
    common = dict(
        project="emu-gen",
        version="1.0.0",
        python="3.11",
        target=TARGET,
        test=TestSpec(imports=("emu_gen._gen",), call=call),
        out_dir=tmp_path / "out",
        log_dir=tmp_path / "logs",
    )
    # Cross alone fails: the generator it compiled for aarch64 cannot run on the host.
    alone = build_sdist(sdist, options=BuildOptions(backend="cross"), **common)
    assert alone.status == Outcome.FAILED and alone.backend == "cross"
    assert "Exec format error" in alone.error, alone.error
    # With the fallback, the emulated backend builds it, and the generator ran on aarch64.
    r = build_sdist(sdist, options=BuildOptions(backend="cross", fallback=("emulated",)), **common)
    assert r.status == Outcome.TESTED, r.message
    assert r.backend == "emulated"
    log = r.log.read_text()
    assert "backend cross failed" in log and "falling back to emulated" in log
    assert host_binfmt() == host_binfmt_before


@pytest.mark.slow
def test_a_failing_emulated_build_names_the_compiler_error(bookworm: Path, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "emu-bad", c_extension=True, extra_c="#error broken\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with BuildLog(tmp_path / "log") as log, pytest.raises(BuildError) as info:
        EmulatedBackend().build(sdist, "3.11", TARGET, BuildOptions(), workdir, log)
    assert "#error broken" in str(info.value)


@pytest.mark.slow
def test_doctor_and_rootfs_commands_report_the_emulated_backend(bookworm: Path) -> None:
    doctor = subprocess.run(
        ["wheelfarm", "doctor", "--json"], capture_output=True, text=True, check=True
    )
    emulated = json.loads(doctor.stdout)["emulated"]
    assert emulated["ok"] is True and emulated["reasons"] == []
    made = subprocess.run(
        ["wheelfarm", "rootfs", "--python", "3.11", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(made.stdout) == {"rootfs": {"3.11": str(bookworm)}}
