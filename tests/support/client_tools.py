"""The other installers and publishers people use (poetry, pdm, hatch), pinned, in a venv of their
own under the cache (they would not share one with wheelfarm's dependencies). Installed once from
PyPI with uv; the tests then point them at local indexes only."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from builder.common.paths import cache_dir

PINS = ("poetry==2.5.1", "pdm==2.29.4", "hatch==1.18.2")


def client_tools() -> Path:
    """The bin folder of a venv holding PINS (made on first use)."""
    key = hashlib.sha256("\n".join(PINS).encode()).hexdigest()[:12]
    venv = cache_dir() / "test-client-tools" / key
    bin_dir = venv / "bin"
    if all((bin_dir / tool).is_file() for tool in ("poetry", "pdm", "hatch")):
        return bin_dir
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(bin_dir / "python"), *PINS],
        check=True,
        env=env,
    )
    return bin_dir
