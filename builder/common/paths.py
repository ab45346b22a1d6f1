"""Where wheelfarm keeps things: one cache folder for big downloads, one data folder for state.

The cache (zig's cache, .debs, sysroots, sdists, build environments) can be deleted at any time and is
refilled on demand; the data folder (index storage, ledger, tokens) is the farm's state. Both come from
the farm configuration (builder.common.farmconfig): $WHEELFARM_CACHE / $WHEELFARM_DATA, else the
`cache` / `data` keys of wheelfarm.toml, else the XDG defaults below.
"""

from __future__ import annotations

from pathlib import Path

from builder.common.farmconfig import load_config


def cache_dir() -> Path:
    """The one cache folder: $WHEELFARM_CACHE, else the config's `cache`, else
    $XDG_CACHE_HOME/wheelfarm, else ~/.cache/wheelfarm."""
    return load_config().cache


def data_dir() -> Path:
    """The farm's state: $WHEELFARM_DATA, else the config's `data`, else $XDG_DATA_HOME/wheelfarm,
    else ~/.local/share/wheelfarm."""
    return load_config().data
