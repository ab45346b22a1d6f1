"""Push the farm's state to wheelfarm's index: the status document, build logs and provenance.

The nightly calls this after publishing, with the same upload token (it never reaches a build):

    with FarmClient("https://wheels.example.com", token) as farm:
        farm.put_log("confluent-kafka", "run42-cp311-manylinux_2_17_aarch64", log_path)
        farm.put_provenance(wheel.name, record)
        farm.put_status(doc)

The server's API is index_server/farm_api.py; the limits both sides use are in
builder/common/farm_protocol.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from builder.common.farm_protocol import MAX_LOG_BYTES
from builder.common.farmconfig import index_base_url

TOKEN_ENV = "WHEELFARM_INDEX_TOKEN"
TRUNCATED = "[wheelfarm: the first {cut} bytes of this log were cut; the last {kept} follow]\n"


class FarmClientError(RuntimeError):
    """A push failed; the message names the URL and what the server (or the network) said."""


def log_tail(data: bytes, limit: int = MAX_LOG_BYTES) -> bytes:
    """`data` if it fits in `limit` bytes, else a note and as many whole last lines as fit."""
    if len(data) <= limit:
        return data
    room = limit - len(TRUNCATED.format(cut=len(data), kept=len(data))) - 1
    tail = data[-room:]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1 :]  # start at a whole line
    return TRUNCATED.format(cut=len(data) - len(tail), kept=len(tail)).encode() + tail


def _json(doc: Mapping[str, Any], what: str) -> bytes:
    try:
        return json.dumps(doc).encode()
    except (TypeError, ValueError) as exc:
        raise FarmClientError(f"cannot send {what} as JSON: {exc}") from None


class FarmClient:
    def __init__(
        self,
        index_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        max_log: int = MAX_LOG_BYTES,
    ) -> None:
        """`index_url`: the index's base URL (or its /simple/ URL); `token`: an upload token
        (default: $WHEELFARM_INDEX_TOKEN)."""
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise FarmClientError(f"no upload token for {index_url}: pass one or set ${TOKEN_ENV}")
        self.base_url = index_base_url(index_url)
        self.max_log = max_log
        self._http = httpx.Client(auth=("__token__", token), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FarmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        url = self.base_url + path
        try:
            resp = self._http.put(url, content=body, headers={"Content-Type": content_type})
        except httpx.HTTPError as exc:
            raise FarmClientError(f"PUT {url}: {exc or type(exc).__name__}") from None
        if resp.status_code != 200:
            message = resp.text.strip() or resp.reason_phrase
            raise FarmClientError(f"PUT {url}: {resp.status_code}: {message}")
        try:
            return resp.json()
        except ValueError:
            raise FarmClientError(
                f"PUT {url}: the answer is not JSON: {resp.text[:200]!r}"
            ) from None

    def put_status(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the farm's status document (index_server/farm_status.schema.json)."""
        return self._put("/api/farm/status", _json(doc, "the status document"), "application/json")

    def put_log(self, project: str, log_id: str, path: Path | str) -> dict[str, Any]:
        """Store a build log under the project; a log over the limit is sent as its tail."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FarmClientError(f"cannot read the log {path}: {exc.strerror}") from None
        return self._put(
            f"/api/farm/logs/{quote(project, safe='')}/{quote(log_id, safe='')}",
            log_tail(data, self.max_log),
            "text/plain; charset=utf-8",
        )

    def put_provenance(self, wheel_filename: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store the provenance of a wheel the index already holds (404 otherwise)."""
        return self._put(
            f"/api/farm/provenance/{quote(wheel_filename, safe='')}",
            _json(record, f"the provenance of {wheel_filename}"),
            "application/json",
        )
