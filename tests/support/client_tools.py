"""The other installers and publishers people use (poetry, pdm, hatch), pinned, each in a venv of its
own under the cache (they do not share dependency versions with wheelfarm or with each other).
Installed once from PyPI with uv; the tests then point them at local indexes only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builder.common.paths import cache_dir

# pdm 2.29 breaks with hishel 2 (its `locked` extra pins hishel 1.4.0).
PINS = {
    "poetry": ("poetry==2.5.1",),
    "pdm": ("pdm==2.29.4", "hishel[httpx2]==1.4.0"),
    "hatch": ("hatch==1.18.2",),
}


def client_tool(tool: str) -> Path:
    """The executable of `tool` (a key of PINS), installed on first use."""
    pins = PINS[tool]
    venv = cache_dir() / "test-client-tools" / "+".join(p.split("[")[0] for p in pins)
    exe = venv / "bin" / tool
    if exe.is_file():
        return exe
    uv = Path(sys.executable).with_name("uv")
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *pins],
        check=True,
        env=env,
    )
    return exe
