"""Run aarch64 programs in a root filesystem without touching the host's global state.

`run_in_rootfs` enters a new user namespace (root inside, the caller outside) with its own mount and
PID namespaces, mounts a binfmt_misc instance private to that user namespace (Linux >= 6.7), registers
qemu-aarch64-static there with the F flag (the kernel opens the interpreter at registration, so it
need not exist inside the chroot), mounts /proc, /dev, a tmpfs /tmp and the work folders into the root
filesystem, and chroots. The root filesystem itself is mounted read-only, so a build cannot change the
cached tree. Nothing is registered on the host: every mount dies with the namespace.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

QEMU_PACKAGE = "qemu-user-static"
QEMU_STATIC = Path("/usr/bin/qemu-aarch64-static")
MIN_KERNEL = (6, 7)  # first kernel whose binfmt_misc has an instance per user namespace

# The aarch64 ELF header (e_ident + e_type EXEC/DYN + e_machine 183) and its mask, as Debian's
# qemu-user-static registers it (/usr/lib/binfmt.d/qemu-aarch64.conf).
AARCH64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NamespaceError(RuntimeError):
    """This machine cannot enter an emulated aarch64 root filesystem."""


@dataclass(frozen=True)
class Support:
    """Whether this machine can run the emulated backend, and why not."""

    ok: bool
    reasons: tuple[str, ...]  # what is missing; empty when ok
    details: tuple[str, ...]  # what was checked


def kernel_version(release: str | None = None) -> tuple[int, int]:
    release = release or platform.release()
    parts = release.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def _userns_allowed() -> tuple[bool, str]:
    """Can this process create a user namespace? (sysctls first, then the real thing.)"""
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
    ):
        p = Path(path)
        if p.exists() and p.read_text().strip() == bad and os.geteuid() != 0:
            return False, f"{path} is {bad}"
    if not shutil.which("unshare"):
        return False, "unshare (util-linux) is not installed"
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return False, f"unshare --user failed: {proc.stderr.strip()}"
    return True, "user namespaces can be created (unshare --user works)"


def check_support() -> Support:
    """Check kernel version, user namespaces and qemu-aarch64-static (for `wheelfarm doctor`)."""
    reasons: list[str] = []
    details: list[str] = []
    if platform.system() != "Linux":
        return Support(False, (f"needs Linux, this is {platform.system()}",), ())
    release = platform.release()
    if kernel_version(release) < MIN_KERNEL:
        reasons.append(
            f"kernel {release} is older than 6.7: no binfmt_misc per user namespace, and "
            "wheelfarm never registers binfmt handlers on the host"
        )
    else:
        details.append(f"kernel {release} gives each user namespace its own binfmt_misc")
    ok, why = _userns_allowed()
    (details if ok else reasons).append(why)
    if QEMU_STATIC.exists():
        details.append(f"{QEMU_STATIC} is present")
    else:
        reasons.append(
            f"{QEMU_STATIC} is missing (Debian package {QEMU_PACKAGE}; installed on first use)"
        )
    return Support(not reasons, tuple(reasons), tuple(details))


def ensure_qemu_static() -> Path:
    """qemu-aarch64-static, installed from Debian when missing (without recommends: binfmt-support
    would register handlers on the host)."""
    if not QEMU_STATIC.exists():
        from builder.build.toolchain.host import ensure_host_packages

        ensure_host_packages([QEMU_PACKAGE])
    if not QEMU_STATIC.exists():
        raise NamespaceError(f"{QEMU_STATIC} missing after installing {QEMU_PACKAGE}")
    return QEMU_STATIC


def _register_line(qemu: Path) -> str:
    # F: the kernel opens the interpreter now, while it is still visible (the chroot has no qemu).
    # No P: plain qemu-aarch64-static does not expect the extra argv[0] (Debian's P entry goes
    # through a differently named link for that).
    return f":wheelfarm-aarch64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{qemu}:F"


def enter_script(
    root: Path,
    argv: Sequence[str],
    *,
    binds: Mapping[str, Path],
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    cwd: str = "/",
    qemu: Path = QEMU_STATIC,
    read_only: bool = True,
) -> str:
    """The shell script run as root of the new namespaces: mounts, registration, chroot, exec."""
    q = shlex.quote
    r = q(str(root))
    lines = [
        "set -eu",
        # A private binfmt_misc: this user namespace's own instance, gone when the namespace ends.
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
        f"printf '%s' {q(_register_line(qemu))} > /proc/sys/fs/binfmt_misc/register",
        # The cached tree read-only; then what a build writes goes to /tmp (tmpfs) and the binds.
        f"mount --bind {r} {r}",
        *([f"mount -o remount,bind,ro {r}"] if read_only else []),
        f"mount -t proc proc {r}/proc",
        # The same (namespace's own) instance, visible inside for diagnosis.
        f"mount -t binfmt_misc binfmt_misc {r}/proc/sys/fs/binfmt_misc",
        f"mount --rbind /dev {r}/dev",
        f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp",
    ]
    for inside, outside in binds.items():
        lines.append(f"mount --bind {q(str(outside))} {r}{q(inside)}")
    for inside, outside in ro_binds.items():
        lines.append(f"mount --bind {q(str(outside))} {r}{q(inside)}")
        lines.append(f"mount -o remount,bind,ro {r}{q(inside)}")
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    command = " ".join(q(a) for a in argv)
    lines.append(
        f"exec chroot {r} /usr/bin/env -i PATH={DEFAULT_PATH} HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 "
        f"{env_args} /bin/sh -c {q(f'cd {q(cwd)} && exec {command}')}"
    )
    return "\n".join(lines) + "\n"


def rootfs_command(
    root: Path,
    argv: Sequence[str],
    *,
    binds: Mapping[str, Path] = {},
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    cwd: str = "/",
    read_only: bool = True,
) -> list[str]:
    """The host command that runs `argv` inside the aarch64 root filesystem `root`.

    `binds` (read-write) and `ro_binds` map folders inside the root, which must exist there, to host
    folders. `read_only=False` lets the run change the tree itself (only while it is being made).
    """
    support = check_support()
    if not support.ok:
        raise NamespaceError("emulated backend unavailable: " + "; ".join(support.reasons))
    for inside in [*binds, *ro_binds]:
        if not (root / inside.lstrip("/")).is_dir():
            raise NamespaceError(f"{root}: no folder {inside} to mount onto")
    script = enter_script(
        root, argv, binds=binds, ro_binds=ro_binds, env=env, cwd=cwd, read_only=read_only
    )
    # --kill-child: when unshare dies (timeout, ^C) the whole PID namespace goes with it.
    return [
        "unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork",
        "--mount-proc", "--kill-child", "--", "/bin/sh", "-c", script,
    ]  # fmt: skip


def run_in_rootfs(
    root: Path,
    argv: Sequence[str],
    *,
    binds: Mapping[str, Path] = {},
    ro_binds: Mapping[str, Path] = {},
    env: Mapping[str, str] = {},
    cwd: str = "/",
    read_only: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside `root` (see rootfs_command); stdout holds stdout and stderr together."""
    cmd = rootfs_command(
        root, argv, binds=binds, ro_binds=ro_binds, env=env, cwd=cwd, read_only=read_only
    )
    try:
        return subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            stdin=subprocess.DEVNULL, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return subprocess.CompletedProcess(cmd, -9, out + f"\nkilled after {timeout} s\n", "")


HOST_INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))


def hermetic_command(
    cmd: Sequence[str | Path],
    include_view: Path,
    keep: Sequence[Path] = (),
    layers: Sequence[Path] = (),
) -> list[str]:
    """`cmd` in a user and mount namespace where /usr/include is the target's headers
    (`include_view`) under the native libraries' include folders (`layers`, first wins: an
    overlay), and /usr/local/include is empty. A build script that reads or tests header files
    itself, not through the compiler (whose commands are scanned), sees the target's world, as on
    an aarch64 machine with the -dev packages installed (`-I/usr/include/PCSC`,
    `os.path.exists('/usr/include/sys/capability.h')`). `keep`: folders under /usr/include that
    stay the host's (the host CPython's headers, which the build compiles against). Needs user
    namespaces (`userns_available`)."""
    handle = include_view.with_name(include_view.name + ".host")  # the host's, while hidden
    handle.mkdir(exist_ok=True)
    q = shlex.quote
    script = ["set -e", f"mount --bind /usr/include {q(str(handle))}"]
    if layers:
        lower = ":".join(str(p) for p in [*layers, include_view])
        script.append(f"mount -t overlay overlay -o ro,lowerdir={q(lower)} /usr/include")
    else:
        script.append(f"mount --rbind {q(str(include_view))} /usr/include")
    for folder in keep:
        if folder.is_relative_to("/usr/include") and folder.is_dir():
            rel = folder.relative_to("/usr/include")
            # a mount point in the view: made once, empty, only ever mounted over
            (include_view / rel).mkdir(parents=True, exist_ok=True)
            script.append(f"mount --bind {q(str(handle / rel))} {q(str(folder))}")
    if HOST_INCLUDE_DIRS[1].is_dir():
        script.append("mount -t tmpfs -o ro,size=4k tmpfs /usr/local/include")
    script.append('exec "$@"')
    return [
        "unshare", "--user", "--map-root-user", "--mount", "--",
        "/bin/sh", "-c", "\n".join(script), "hermetic", *map(str, cmd),
    ]  # fmt: skip


@functools.cache
def userns_available() -> bool:
    """Whether this process can make the user namespace hermetic_command needs (asked once: it
    runs `unshare`, and every cross build asks)."""
    return _userns_allowed()[0]
