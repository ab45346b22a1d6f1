"""The index's bytes in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, R2, ...), through boto3.

`--storage s3://bucket/prefix` (or WHEELFARM_INDEX_STORAGE); the endpoint and credentials come from
boto3's usual sources: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ~/.aws/config. WHEELFARM_S3_DOWNLOADS=redirect answers a
file download with a 302 to a pre-signed URL (the object store sends the bytes); `stream` (default)
sends them through the index.

Atomicity: an object is written by one PUT of the complete body, which S3 makes visible only when it
is whole; a PUT cut short (a killed host, a failed source) leaves nothing under the key. A
first-writer-wins upload (`overwrite=False`) is a conditional PUT (`If-None-Match: *`): of two hosts
writing one filename, the store accepts exactly one and answers the other 412.

Locks (`locked`, for read-modify-write of small keys such as auth/tokens.json, and a project's upload
without --database): a lock is an object `.locks/<name>` created by a conditional PUT
(`If-None-Match: *`), so of several hosts exactly one creates it; the others poll until it is gone.
A holder renews it (a conditional PUT `If-Match` its ETag) every third of its lease and deletes it
(`If-Match` its ETag) when done. A lock not renewed for its lease (a killed host) is taken over by the
first waiter whose conditional PUT `If-Match` the stale ETag succeeds; lease ages are measured on
the store's clock (Last-Modified against the Date of the same HEAD), never across hosts' clocks.

Folder stamps: the catalog re-reads a project only when the stamp of `records/<project>` changed. An
object store has no folder mtime, so every write or delete under a folder whose stamp is read
(STAMPED: the records and the farm's folders) also writes a small stamp object `.stamps/<folder>`
holding the writer's time in nanoseconds, and `stat(folder)` reads it. Other folders (files/: an
upload there is one PUT, not two) have no stamp.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from index_server.storage import CHUNK, AlreadyExists, Stat, Storage, StorageError, check_key

log = logging.getLogger(__name__)

STAMPS = ".stamps"
# The folders whose stat() anything reads (index_server/catalog.py, index_server/farm.py).
STAMPED = ("records/", "farm/")
LOCKS = ".locks"
LOCK_LEASE = (
    30.0  # seconds a lock stays held without renewal (a killed holder's is taken over then)
)
LOCK_WAIT = 300.0  # seconds to wait for a lock before giving up (gunicorn's request timeout)
SPOOL = 8 << 20  # objects up to this size are read into memory, larger ones into a temporary file
SMALL_PUT = 1 << 20  # bodies up to this size are sent without waiting for 100 Continue
# The keys read on every request (the catalog's change stamp) or every upload (the tokens): their
# stat is kept this long, so a request costs no round trip to the store; a change through another
# host (a new or revoked token too) is seen after at most this.
HOT_KEYS = {"generation", "auth/tokens.json"}
HOT_TTL = 0.2


def parse_s3_url(url: str) -> tuple[str, str]:
    """("bucket", "prefix/") of an s3://bucket/prefix URL; StorageError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StorageError(f"{url!r}: not an s3://bucket/prefix URL")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Storage(Storage):
    def __init__(
        self,
        url: str,
        *,
        downloads: str = "stream",
        client: Any = None,
        expires: int = 300,
        lock_lease: float = LOCK_LEASE,
        lock_wait: float = LOCK_WAIT,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        if downloads not in ("stream", "redirect"):
            raise StorageError(f"downloads {downloads!r}: 'stream' or 'redirect'")
        self.downloads = downloads
        self.expires = expires
        self.lock_lease, self.lock_wait = lock_lease, lock_wait
        self.client = client or boto3.client(
            "s3",
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
                s3={"addressing_style": "path"},
            ),
        )
        self.client.meta.events.register("before-send.s3.PutObject", _expect_only_large)
        self._hot: dict[str, tuple[float, Stat | None]] = {}
        self._hot_lock = threading.Lock()

    @classmethod
    def from_env(cls, url: str) -> S3Storage:
        return cls(url, downloads=os.environ.get("WHEELFARM_S3_DOWNLOADS", "stream") or "stream")

    def bucket_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.rstrip('/')}"

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket_url()})"

    # -- helpers ------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    def _error(self, key: str, exc: Exception) -> StorageError:
        return StorageError(f"s3://{self.bucket}/{self.prefix}{key}: {exc}")

    def _stamp(self, key: str) -> None:
        folder = key.rsplit("/", 1)[0] if "/" in key else ""
        if not folder or not folder.startswith(STAMPED):
            return
        body = str(time.time_ns()).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key(f"{STAMPS}/{folder}"), Body=body)

    @contextmanager
    def _calls(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise self._error(key, exc) from None
        except BotoCoreError as exc:
            raise self._error(key, exc) from None

    # -- the Storage interface ----------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        base = self._key(prefix) + "/" if prefix else self.prefix
        names: set[str] = set()
        with self._calls(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            ):
                for obj in page.get("Contents", []):
                    names.add(obj["Key"][len(base) :])
                for sub in page.get("CommonPrefixes", []):
                    names.add(sub["Prefix"][len(base) :].rstrip("/"))
        names.difference_update((STAMPS, LOCKS))
        return sorted(n for n in names if n)

    def list_two_levels(self, prefix: str) -> list[tuple[str, str]]:
        """One flat listing of the prefix (1,000 keys a call) instead of one call per folder."""
        base = self._key(prefix) + "/"
        out = []
        with self._calls(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            ):
                for obj in page.get("Contents", []):
                    parts = obj["Key"][len(base) :].split("/")
                    if len(parts) == 2 and all(parts):
                        out.append((parts[0], parts[1]))
        return sorted(out)

    def open(self, key: str) -> BinaryIO:
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - the caller closes it
        try:
            with self._calls(key):
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
                while chunk := body.read(CHUNK):
                    out.write(chunk)
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return out  # type: ignore[return-value]

    def put_atomic(
        self, key: str, source: BinaryIO, *, overwrite: bool = True, durable: bool = True
    ) -> None:
        body = _seekable(source)
        extra = {} if overwrite else {"IfNoneMatch": "*"}
        from botocore.exceptions import ClientError

        try:
            with self._calls(key):
                try:
                    self.client.put_object(
                        Bucket=self.bucket, Key=self._key(key), Body=body, **extra
                    )
                except ClientError as exc:
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                    if not overwrite and (
                        status in (409, 412)
                        or exc.response.get("Error", {}).get("Code") == "PreconditionFailed"
                    ):
                        raise AlreadyExists(key) from None
                    raise
                self._stamp(key)
        finally:
            if body is not source:
                body.close()
        self._forget(key)

    def put_object_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """One whole object with the Content-Type a static host serves it with (the export)."""
        with self._calls(key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )

    def exists(self, key: str) -> bool:
        try:
            with self._calls(key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        with self._calls(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
            self._stamp(key)
        self._forget(key)

    def stat(self, key: str) -> Stat | None:
        if key in HOT_KEYS:
            now = time.monotonic()
            hit = self._hot.get(key)
            if hit is not None and now - hit[0] < HOT_TTL:
                return hit[1]
            value = self._stat(key)
            with self._hot_lock:
                self._hot[key] = (now, value)
            return value
        return self._stat(key)

    def _stat(self, key: str) -> Stat | None:
        try:
            with self._calls(key):
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return Stat(head["ContentLength"], int(head["LastModified"].timestamp() * 1e9))
        except FileNotFoundError:
            pass
        # A folder: its stamp object, if anything was ever written under it.
        try:
            stamp = self.read_bytes(f"{STAMPS}/{key}") if key else None
        except FileNotFoundError:
            stamp = None
        if stamp is None:
            return Stat(0, 0) if not key else None
        try:
            return Stat(0, int(stamp))
        except ValueError:
            return Stat(0, 0)

    def _forget(self, key: str) -> None:
        if key in HOT_KEYS:
            with self._hot_lock:
                self._hot.pop(key, None)

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the lock `name` across hosts (see the module's docstring)."""
        lock = _Lease(self, f"{LOCKS}/{check_key(name)}", self.lock_lease)
        lock.acquire(self.lock_wait)
        try:
            yield
        finally:
            lock.release()

    def download_url(self, key: str) -> str | None:
        """A pre-signed GET URL when downloads are redirected, else None (stream them)."""
        if self.downloads != "redirect":
            return None
        with self._calls(key):
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=self.expires,
            )

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (for tests and first starts)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            with self._calls(""):
                self.client.create_bucket(Bucket=self.bucket)


class _Lease:
    """One holding of a lock object: acquire, renew in the background, release."""

    def __init__(self, store: S3Storage, key: str, lease: float) -> None:
        self.store, self.key, self.lease = store, key, lease
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _put(self, **condition: str) -> bool:
        """One conditional PUT of the lock object; False when the condition did not hold."""
        from botocore.exceptions import ClientError

        # Every body is new (the time), so every renewal gets a new ETag: a waiter's takeover
        # `If-Match` a stale ETag fails once the holder has renewed.
        body = json.dumps({"owner": self.owner, "at": time.time_ns()}).encode()
        try:
            with self.store._calls(self.key):
                try:
                    head = self.store.client.put_object(
                        Bucket=self.store.bucket,
                        Key=self.store._key(self.key),
                        Body=body,
                        Metadata={"lease": str(self.lease)},
                        **condition,
                    )
                except ClientError as exc:
                    if _condition_failed(exc):
                        return False
                    raise
        except FileNotFoundError:  # If-Match on an object that is gone
            return False
        self.etag = head["ETag"]
        return True

    def _stale_etag(self) -> str | None:
        """The ETag of the current lock object when its holder's lease has run out, else None
        (also None when there is no lock object: the next create will tell)."""
        try:
            with self.store._calls(self.key):
                head = self.store.client.head_object(
                    Bucket=self.store.bucket, Key=self.store._key(self.key)
                )
        except FileNotFoundError:
            return None
        headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        try:
            now: datetime = parsedate_to_datetime(headers["date"])
            lease = float(head.get("Metadata", {}).get("lease", self.lease))
        except (KeyError, TypeError, ValueError):
            return None
        # Both times are the store's, to the second: one second of slack for the rounding.
        age = (now - head["LastModified"]).total_seconds()
        return head["ETag"] if age > lease + 1 else None

    def acquire(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        delay = 0.01
        while not self._put(IfNoneMatch="*"):
            stale = self._stale_etag()
            if stale is not None and self._put(IfMatch=stale):
                log.warning("took over the lock %s: its holder stopped renewing it", self.key)
                break
            if time.monotonic() > deadline:
                raise StorageError(
                    f"s3://{self.store.bucket}/{self.store.prefix}{self.key}: "
                    f"still held after {wait:.0f} s"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.key}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self._put(IfMatch=self.etag or ""):
                    log.error("lost the lock %s: another holder took it over", self.key)
                    return
            except StorageError as exc:  # the store is unreachable: try again next period
                log.warning("could not renew the lock %s: %s", self.key, exc)

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            with self.store._calls(self.key):
                try:
                    self.store.client.delete_object(
                        Bucket=self.store.bucket,
                        Key=self.store._key(self.key),
                        IfMatch=self.etag or "",
                    )
                except ClientError as exc:
                    if not _condition_failed(exc):
                        raise
                    log.error("lost the lock %s before releasing it", self.key)
        except FileNotFoundError:
            log.error("lost the lock %s before releasing it", self.key)
        except StorageError as exc:  # not raised over the holder's own outcome: it expires
            log.warning(
                "could not release the lock %s (it expires in %.0f s): %s",
                self.key,
                self.lease,
                exc,
            )


def _condition_failed(exc: Exception) -> bool:
    """A conditional request refused: 412, or 409 when the store saw a concurrent conditional
    write to the same key (AWS: ConditionalRequestConflict)."""
    response = getattr(exc, "response", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code", "")
    return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")


def _expect_only_large(request: Any, **_: Any) -> None:
    """botocore sends every PUT body after `Expect: 100-continue`, a round trip to the store
    before the body: worth it for a large body the store may refuse (a taken name), not for a small
    one, which goes with its headers. (The header is not signed.)"""
    if int(request.headers.get("Content-Length") or SMALL_PUT + 1) <= SMALL_PUT:
        request.headers.pop("Expect", None)


def _seekable(source: BinaryIO) -> BinaryIO:
    """`source` itself when it can be re-read from the start (signing and retries need that), else a
    spooled copy."""
    try:
        source.seek(0, io.SEEK_CUR)
        if source.seekable():
            return source
    except (AttributeError, OSError, ValueError):
        pass
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - put_atomic closes it
    while chunk := source.read(CHUNK):
        copy.write(chunk)
    copy.seek(0)
    return copy  # type: ignore[return-value]


def storage_from_url(url: str | None) -> Storage | None:
    """The storage a `--storage` URL names: s3://bucket/prefix; None for the local default."""
    if not url:
        return None
    if url.startswith("s3://"):
        return S3Storage.from_env(url)
    raise StorageError(
        f"--storage {url!r}: give s3://bucket/prefix (or nothing for the data folder)"
    )
