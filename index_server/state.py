"""The index's shared state (configuration, storage, catalog, tokens, farm data) and how a request
reaches it: `init_app` stores one State in `app.extensions["wheelfarm"]`, `get_state()` reads it
through Flask's `current_app`. Blueprints import this module, never the app factory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app

from index_server.auth_sql import tokens_for
from index_server.catalog_sql import catalog_for
from index_server.farm import Farm
from index_server.farm_sql import status_store_for
from index_server.shadowing import Upstream
from index_server.storage import Storage

DEFAULT_MAX_UPLOAD = 512 << 20
EXTENSION = "wheelfarm"


def default_data_dir() -> Path:
    from builder.common.paths import data_dir

    return data_dir() / "index"


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Config:
    data: Path
    private: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD  # bytes, for a whole upload request
    base_url: str = ""  # e.g. "https://wheels.example.com"; empty: links are relative to the host
    strict: bool = False  # uploads must pass the wheel checker (builder.check) or get a 422
    upstream: str = "pypi"  # the index whose names must not be shadowed: pypi, pip, a URL, or none
    # The overlay (/overlay/simple/, index_server/overlay.py) of that upstream and this index:
    upstream_max_stale: int = 600  # seconds an upstream page is served before it is revalidated
    cooldown_days: float = 0.0  # hide upstream files uploaded less than this many days ago
    cache_upstream_files: bool = False  # upstream files through /overlay/files/ (pull-through)

    @classmethod
    def from_env(cls) -> Config:
        """WHEELFARM_INDEX_DATA, WHEELFARM_INDEX_PRIVATE (1/true), WHEELFARM_INDEX_MAX_UPLOAD
        (bytes), WHEELFARM_INDEX_BASE_URL, WHEELFARM_INDEX_STRICT, WHEELFARM_INDEX_UPSTREAM,
        WHEELFARM_INDEX_UPSTREAM_MAX_STALE (s), WHEELFARM_INDEX_COOLDOWN_DAYS,
        WHEELFARM_INDEX_CACHE_UPSTREAM_FILES (1/true)."""
        env = os.environ
        return cls(
            data=Path(env["WHEELFARM_INDEX_DATA"])
            if env.get("WHEELFARM_INDEX_DATA")
            else default_data_dir(),
            private=_flag(env.get("WHEELFARM_INDEX_PRIVATE")),
            max_upload=int(env.get("WHEELFARM_INDEX_MAX_UPLOAD") or DEFAULT_MAX_UPLOAD),
            base_url=env.get("WHEELFARM_INDEX_BASE_URL", "").rstrip("/"),
            strict=_flag(env.get("WHEELFARM_INDEX_STRICT")),
            upstream=env.get("WHEELFARM_INDEX_UPSTREAM") or "pypi",
            upstream_max_stale=int(env.get("WHEELFARM_INDEX_UPSTREAM_MAX_STALE") or 600),
            cooldown_days=float(env.get("WHEELFARM_INDEX_COOLDOWN_DAYS") or 0),
            cache_upstream_files=_flag(env.get("WHEELFARM_INDEX_CACHE_UPSTREAM_FILES")),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "WHEELFARM_INDEX_DATA": str(self.data),
            "WHEELFARM_INDEX_PRIVATE": "1" if self.private else "",
            "WHEELFARM_INDEX_MAX_UPLOAD": str(self.max_upload),
            "WHEELFARM_INDEX_BASE_URL": self.base_url,
            "WHEELFARM_INDEX_STRICT": "1" if self.strict else "",
            "WHEELFARM_INDEX_UPSTREAM": self.upstream,
            "WHEELFARM_INDEX_UPSTREAM_MAX_STALE": str(self.upstream_max_stale),
            "WHEELFARM_INDEX_COOLDOWN_DAYS": str(self.cooldown_days),
            "WHEELFARM_INDEX_CACHE_UPSTREAM_FILES": "1" if self.cache_upstream_files else "",
        }


class State:
    """Everything a request needs."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        # With a database, the catalog, the tokens and the farm status are rows in it, shared by
        # every host; without one, keys of the storage.
        database = os.environ.get("WHEELFARM_INDEX_DATABASE")
        self.catalog = catalog_for(storage, database)
        self.tokens = tokens_for(storage, database)
        self.farm = Farm(storage, self.catalog, status_store_for(storage, database))
        self.upstream = Upstream(config.upstream, storage)

    def refresh(self) -> None:
        """Pick up what other processes changed (one stat when nothing did)."""
        self.catalog.refresh()
        self.farm.refresh()


def init_app(app: Flask, config: Config, storage: Storage) -> State:
    st = State(config, storage)
    st.catalog.load()
    app.extensions[EXTENSION] = st
    return st


def get_state() -> State:
    return current_app.extensions[EXTENSION]
