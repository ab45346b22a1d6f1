"""The one network layer: HTTP GETs with retries, and downloads verified by sha256.

Every request of wheelfarm's own (index pages, sdists, upstream wheels, native library sources) goes
through `Http`: a bounded connection pool, a timeout, and retries with exponential backoff and jitter
on 5xx, 429 (honouring `Retry-After`, capped) and network errors. A 4xx is an answer, not retried.
Downloads stream into a temporary file beside the target, are hashed while they stream, and are renamed
into place only when the sha256 matches: a reader never sees a partial or unverified file.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from builder.common.atomic import atomic_writer

USER_AGENT = "wheelfarm/0.1 (+https://github.com/wheelfarm)"
CHUNK = 1 << 16
MAX_RETRY_AFTER = 30.0  # seconds: a server asking for longer is not waited on

T = TypeVar("T")


class UpstreamError(Exception):
    """A server that could not answer; the message is one line naming the URL and the problem."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url, self.problem = url, message


class HashMismatch(UpstreamError):
    """A download whose bytes are not the ones asked for (never retried, never kept)."""


class _Again(Exception):
    """This attempt's answer is worth another try (5xx, 429)."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        self.problem, self.retry_after = problem, retry_after


def redact(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Http:
    """A thread-safe HTTP client with one retry policy. Use as a context manager or call close()."""

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_connections: int = 16,
    ) -> None:
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.requests = 0  # requests that reached the network, retries included
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """The answer to a GET: any 2xx, 3xx or 4xx; 5xx, 429 and network errors are retried."""

        def once() -> httpx.Response:
            response = self._client.get(url, headers=headers)
            _raise_if_retryable(response)
            return response

        return self._with_retries(url, once)

    def download(self, url: str, target: Path, sha256: str | None) -> Path:
        """Stream `url` into `target` (atomically), verifying its sha256 when one is given."""
        shown = redact(url)

        def once() -> Path:
            with self._client.stream("GET", url) as response:
                _raise_if_retryable(response)
                if response.status_code != 200:
                    raise UpstreamError(shown, f"HTTP {response.status_code}")
                digest = hashlib.sha256()
                with atomic_writer(target) as fh:
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        fh.write(chunk)
                    if sha256 and digest.hexdigest() != sha256.lower():
                        raise HashMismatch(
                            shown, f"sha256 mismatch: expected {sha256}, got {digest.hexdigest()}"
                        )
            return target

        return self._with_retries(url, once)

    def _with_retries(self, url: str, once: Callable[[], T]) -> T:
        attempts = self.retries + 1
        problem, retry_after = "", None
        for attempt in range(attempts):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 4)
                time.sleep(min(retry_after, MAX_RETRY_AFTER) if retry_after is not None else delay)
                retry_after = None
            with self._lock:
                self.requests += 1
            try:
                return once()
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g}s"
            except httpx.TransportError as exc:
                problem = f"network error: {exc or type(exc).__name__}"
            except _Again as again:
                problem, retry_after = again.problem, again.retry_after
        tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
        raise UpstreamError(redact(url), f"{problem} ({tries})")


def _raise_if_retryable(response: httpx.Response) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        value = response.headers.get("retry-after", "")
        raise _Again(
            f"HTTP {response.status_code} {response.reason_phrase}".strip(),
            float(value) if value.isdigit() else None,
        )
