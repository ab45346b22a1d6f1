"""Public-name shadowing (dependency confusion): the index knows its upstream (PyPI by default, any
PEP 691/503 index by URL, or none when air-gapped) and refuses what would shadow a public project.

An upload of a project the upstream has is accepted only for a version the upstream has (a farm
rebuild of a public release); anything else is 403 naming the policy. A project the upstream lacks
is private to this index: its first accepted upload leaves a marker (policy/private/<project>.json),
and /status and the project page warn when such a name later appears upstream.

Upstream pages come through builder.common.upstream's IndexClient and its on-disk HTTP cache (the planner's
client), so a fresh page costs no request; one client per worker process (made after the fork).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading

from packaging.utils import NormalizedName
from packaging.version import Version

from builder.common.upstream import (
    SHADOWING_POLICY,
    IndexClient,
    UpstreamError,
    project_or_none,
    shadowing_refusal,
)
from index_server.catalog import now_iso
from index_server.storage import AlreadyExists, Storage

PRIVATE = "policy/private"
NONE = "none"

__all__ = ["SHADOWING_POLICY", "Upstream", "UpstreamError"]


class Upstream:
    def __init__(self, url: str, storage: Storage) -> None:
        self.url = (
            url  # "none", "pypi", "pip" or an index URL (builder.common.upstream.resolve_index_url)
        )
        self.storage = storage
        self._clients: dict[int, IndexClient] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.url.lower() != NONE

    def _client(self) -> IndexClient:
        with self._lock:
            pid = os.getpid()
            if pid not in self._clients:  # an httpx client must not cross gunicorn's fork
                self._clients = {pid: IndexClient(self.url, timeout=10.0, retries=1)}
            return self._clients[pid]

    def client(self) -> IndexClient:
        """This process's client of the upstream index (shared with the overlay)."""
        return self._client()

    def is_private(self, project: NormalizedName) -> bool:
        return self.storage.exists(f"{PRIVATE}/{project}.json")

    @property
    def index_url(self) -> str:
        return self._client().index_url if self.enabled else NONE

    def refusal(self, project: NormalizedName, version: Version) -> tuple[str | None, bool]:
        """(why this upload would shadow a public project, or None; whether the upstream lacks the
        project). UpstreamError when the upstream cannot answer (the upload is then refused)."""
        if not self.enabled:
            return None, False
        client = self._client()
        page = project_or_none(client, project)
        return shadowing_refusal(page, version, client.index_url), page is None

    def mark_private(self, project: NormalizedName) -> None:
        """After an accepted upload of a project the upstream lacks: remember it as private."""
        key = f"{PRIVATE}/{project}.json"
        if self.storage.exists(key):
            return
        marker = {"project": project, "upstream": self.index_url, "since": now_iso()}
        with contextlib.suppress(AlreadyExists):
            self.storage.put_bytes(key, json.dumps(marker).encode(), overwrite=False)

    def private_projects(self) -> list[str]:
        return [n.removesuffix(".json") for n in self.storage.list(PRIVATE) if n.endswith(".json")]

    def shadowed(self, projects: list[str]) -> list[str]:
        """Those of `projects` marked private here that the upstream has now (best effort: an
        upstream that cannot answer warns of nothing)."""
        if not self.enabled:
            return []
        marked = set(self.private_projects())
        found = []
        for name in projects:
            if name not in marked:
                continue
            try:
                self._client().project(name)
                found.append(name)
            except UpstreamError:  # ProjectNotFound included
                continue
        return found
