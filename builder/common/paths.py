"""Where wheelfarm keeps things: one cache folder for big downloads, one data folder for state.

The cache (zig's cache, .debs, sysroots, sdists, build environments) can be deleted at any time and is
refilled on demand; the data folder (index storage, ledger, tokens) is the farm's state.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The one cache folder: $WHEELFARM_CACHE, else $XDG_CACHE_HOME/wheelfarm, else ~/.cache/wheelfarm."""
    if env := os.environ.get("WHEELFARM_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "wheelfarm"


def data_dir() -> Path:
    """The farm's state: $WHEELFARM_DATA, else $XDG_DATA_HOME/wheelfarm, else ~/.local/share/wheelfarm."""
    if env := os.environ.get("WHEELFARM_DATA"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "wheelfarm"
