"""Run untrusted build code without the farm's secrets and without write access to the farm's state.

A build runs an sdist's own code (setup.py, build backends, before-build hooks). It gets:
- an environment without secrets: variables whose names say TOKEN, PASSWORD, SECRET, ... are removed,
  so the index token reaches only the publish step;
- where user namespaces are allowed, a private mount namespace in which the index storage and the
  ledger are bind-mounted read-only, so a build cannot write into what the index serves.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|PRIVATE_KEY", re.I)


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: ours) without the variables that look like secrets."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not SECRET_NAME.search(k)}


@functools.cache
def namespaces_available() -> bool:
    """Can this process make a user + mount namespace and remount a folder read-only in it?"""
    if not shutil.which("unshare"):
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def sandboxed(command: Sequence[str], read_only: Sequence[Path]) -> list[str]:
    """`command` wrapped so that the existing folders/files in `read_only` cannot be written.

    Without user namespaces the command is returned as it is (the caller reports that).
    """
    paths = [str(p) for p in read_only if Path(p).exists()]
    if not namespaces_available() or not paths:
        return list(command)
    mounts = "".join(
        f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && "
        for q in (shlex.quote(p) for p in paths)
    )
    return [
        "unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
        "sh", "-c", mounts + 'exec "$@"', "sandbox", *command,
    ]  # fmt: skip
