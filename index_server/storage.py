"""Where the index keeps its bytes: a small key/value interface and a local-folder implementation.

Keys are "/"-separated relative paths such as ``files/tiny-pure/tiny_pure-1.0-py3-none-any.whl``. The
server keeps no state of its own apart from what it stores here, so an S3-compatible store can replace
LocalStorage later by implementing the same methods.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.common.atomic import fsync_dir

CHUNK = 1 << 20
_process_locks: dict[str, threading.Lock] = {}


class StorageError(Exception):
    """A key is invalid or an operation cannot be done."""


class AlreadyExists(StorageError):
    """put_atomic(..., overwrite=False) found the key already there."""


class StorageFull(StorageError):
    """The disk (or quota) is full: nothing was written for the key; the server answers 507."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int


class Storage(ABC):
    # Whether append() works (a local file can grow; an object is replaced whole).
    can_append = False

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The names (not full keys) directly under `prefix`, folders included; [] if none."""

    def list_two_levels(self, prefix: str) -> list[tuple[str, str]]:
        """(folder, name) of everything two levels under `prefix` (files/<project>/<filename>).
        A store that lists a whole prefix at once (S3) does it in far fewer calls than one list()
        per folder."""
        return [(a, b) for a in self.list(prefix) for b in self.list(f"{prefix}/{a}")]

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open `key` for reading; FileNotFoundError if it is missing."""

    @abstractmethod
    def put_atomic(
        self, key: str, source: BinaryIO, *, overwrite: bool = True, durable: bool = True
    ) -> None:
        """Store the bytes of `source` under `key`: readers see the old value or the new, never half.

        With overwrite=False an existing key is left alone and AlreadyExists is raised.
        durable=False leaves making it survive a power cut to a later sync() (or to nobody, for
        what can be derived again); the write is atomic for readers either way.
        """

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def stat(self, key: str) -> Stat | None:
        """Size and modification stamp of `key`, or None.

        For a folder-like prefix the stamp must change whenever a key directly under it is added,
        replaced or removed (the catalog relies on it to re-read only changed projects): a folder's
        mtime does that; an object store can keep a small stamp object per prefix (S3Storage: for
        the prefixes whose stamp is read, records/ and farm/).
        """

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def put_bytes(
        self, key: str, data: bytes, *, overwrite: bool = True, durable: bool = True
    ) -> None:
        import io

        self.put_atomic(key, io.BytesIO(data), overwrite=overwrite, durable=durable)

    def sync(self, keys: list[str]) -> None:
        """Make keys written with durable=False survive a power cut: their bytes and their names.
        Stores whose writes are durable when they return (an object store) have nothing to do."""
        return None

    def append(self, key: str, data: bytes) -> int:
        """Add `data` at the end of the existing `key` in one write that concurrent appends never
        interleave with, and return the size after it. If `key` is replaced meanwhile, the data
        lands in the new value. FileNotFoundError when `key` is missing; only where can_append."""
        raise NotImplementedError(f"{type(self).__name__} cannot append")

    def rewrite_in_place(self, key: str, data: bytes) -> None:
        """Replace the bytes of a small existing key even when the disk is full.

        Only for change stamps, where a reader that sees a torn value merely refreshes once more: a
        local file is overwritten where it is (same size, no new block needed) instead of through a
        temporary file. Stores without such a path just put the bytes.
        """
        self.put_bytes(key, data)

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for `key` when the store has one (lets the server use sendfile)."""
        return None

    def download_url(self, key: str) -> str | None:
        """Where a client can fetch `key` itself (a pre-signed URL), or None: the index streams it."""
        return None

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the exclusive lock `name` for a read-modify-write of small keys.

        This default only serialises the threads of one process; a store shared by several
        processes must override it (LocalStorage: flock; an object store: conditional writes).
        """
        with _process_locks.setdefault(name, threading.Lock()):
            yield

    def sweep_partials(self) -> int:
        """Remove temporary leftovers of writes that were killed midway; return how many."""
        return 0


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise StorageError(f"invalid storage key {key!r}")
    return key


class LocalStorage(Storage):
    """A folder on the local disk. Writes go to a hidden temporary file, are fsynced, then renamed."""

    PART_SUFFIX = ".part"
    LOCKS = ".locks"
    can_append = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def list(self, prefix: str) -> list[str]:
        path = self._path(prefix) if prefix else self.root
        try:
            return sorted(
                n
                for n in os.listdir(path)
                if not (n.startswith(".") and n.endswith(self.PART_SUFFIX))
            )
        except (FileNotFoundError, NotADirectoryError):
            return []

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def put_atomic(
        self, key: str, source: BinaryIO, *, overwrite: bool = True, durable: bool = True
    ) -> None:
        try:
            self._put_atomic(key, source, overwrite, durable)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            # The temporary file is gone already (below); the key kept its old bytes or stayed absent.
            raise StorageFull(
                f"the index storage is full ({os.strerror(exc.errno)}): {key} was not stored"
            ) from exc

    def _put_atomic(self, key: str, source: BinaryIO, overwrite: bool, durable: bool) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The writer's pid is in the temporary name so that a sweep can tell a dead writer's leftover
        # from a live upload in another worker.
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=self.PART_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                while chunk := source.read(CHUNK):
                    fh.write(chunk)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                # link() refuses to replace an existing name, so two concurrent uploads of one
                # filename cannot both win.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise AlreadyExists(key) from None
                os.unlink(tmp)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if durable:
            fsync_dir(path.parent)

    def sync(self, keys: list[str]) -> None:
        folders = []
        for key in keys:
            path = self._path(key)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if path.parent not in folders:
                folders.append(path.parent)
        for folder in folders:
            fsync_dir(folder)

    def append(self, key: str, data: bytes) -> int:
        path = self._path(key)
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                try:
                    written = os.write(fd, data)
                except OSError as exc:
                    if exc.errno not in DISK_FULL:
                        raise
                    written = -1
                if written != len(data):  # a short write on a full disk: a torn line
                    raise StorageFull(f"the index storage is full: {key} was not appended to")
                st = os.fstat(fd)
            finally:
                os.close(fd)
            try:
                if os.stat(path).st_ino == st.st_ino:
                    return st.st_size
            except FileNotFoundError:
                pass
            # Replaced (or removed) meanwhile: readers may have left the old file; append again.

    def rewrite_in_place(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            with open(path, "r+b") as fh:
                fh.write(data)
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
        except FileNotFoundError:
            self.put_bytes(key, data)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            raise StorageFull(
                f"the index storage is full ({os.strerror(exc.errno)}): {key} was not rewritten"
            ) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def stat(self, key: str) -> Stat | None:
        try:
            st = os.stat(self._path(key) if key else self.root)
        except FileNotFoundError:
            return None
        return Stat(st.st_size, st.st_mtime_ns)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """An flock on <root>/.locks/<name>: exclusive across processes and threads (each holder
        opens its own descriptor), released by the kernel if the holder dies."""
        check_key(name)
        folder = self.root / self.LOCKS
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def sweep_partials(self) -> int:
        removed = 0
        for tmp in _walk_partials(self.root, self.PART_SUFFIX):
            if _writer_alive(tmp.name, self.PART_SUFFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
        return removed


def _walk_partials(root: Path, suffix: str) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(suffix):
                yield Path(dirpath) / name


def _writer_alive(name: str, suffix: str) -> bool:
    """Whether the process that is writing temporary file `name` still runs."""
    try:
        pid = int(name[: -len(suffix)].rsplit(".", 2)[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
