"""A small tmpfs that fills up, without touching the host's mount table.

A holder process runs in its own user + mount namespace (`unshare --user --map-root-user --mount
--propagation private`) with a tmpfs mounted over a folder; commands run inside that namespace with
`nsenter`, and the test reads and frees the disk through /proc/<holder>/root, which resolves paths in
the holder's mount namespace. Outside the namespace the folder stays an ordinary empty folder.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


@functools.cache
def tiny_disk_unavailable() -> str | None:
    """Why a namespaced tmpfs cannot be mounted here, or None when it can."""
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
         "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /tmp"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"user namespaces with a tmpfs mount are unavailable: {probe.stderr.strip()}"
    return None


class TinyDisk:
    """A `size_kb` tmpfs at `mountpoint`, visible only to processes started with `popen`/`run`."""

    def __init__(self, mountpoint: Path, size_kb: int) -> None:
        self.mountpoint = Path(mountpoint).absolute()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.size_kb = size_kb
        script = (
            f"mount -t tmpfs -o size={size_kb}k tmpfs '{self.mountpoint}' && echo ready && "
            "exec sleep 100000"
        )
        self.holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
             "sh", "-c", script],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            self.holder.wait(timeout=10)
            raise RuntimeError(f"could not mount a tmpfs at {self.mountpoint}")

    @property
    def view(self) -> Path:
        """The mountpoint as the namespace sees it (readable and writable from the test)."""
        return Path(f"/proc/{self.holder.pid}/root") / self.mountpoint.relative_to("/")

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", "--target", str(self.holder.pid), "--user", "--mount", *argv]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.wrap(argv), **kwargs)

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.wrap(argv), **kwargs)

    def free_kb(self) -> int:
        st = os.statvfs(self.view)
        return st.f_bavail * st.f_frsize // 1024

    def fill(self, leave_kb: int = 0, name: str = "ballast") -> Path:
        """Take all free space but `leave_kb` with a ballast file (delete it to free the space)."""
        ballast = self.view / name
        with open(ballast, "ab", buffering=0) as fh:
            while self.free_kb() > leave_kb:
                try:
                    fh.write(b"\0" * 4096)
                except OSError:
                    break
        return ballast

    def close(self) -> None:
        if self.holder.poll() is None:
            os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait(timeout=10)
        if self.holder.stdout:
            self.holder.stdout.close()

    def __enter__(self) -> TinyDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
