"""The change journal: how the processes sharing one data folder learn what the others changed.

Storage key `generation` (where a store can append, i.e. LocalStorage) is an append-only file:

    wheelfarm-changes <epoch: 32 hex digits>\\n     the header; a new epoch is a new journal
    <project>/<filename>\\n                           that file's record was written or removed
    +farm\\n                                          the farm's data changed (status, logs, provenance)
    *\\n                                              anything may have changed: re-read everything

A writer appends its lines after the change is stored (O_APPEND: concurrent appends never
interleave). A reader keeps the epoch and the offset it has read up to; per request it costs one
stat when nothing changed, and after a change it reads only the new lines and then only the records
they name: an upload costs the other processes one small read, whatever the size of the index.

A reader that cannot follow (another epoch, a file that shrank, a line it cannot parse) is told to
re-read everything, which the catalog does the old way (index_server/catalog.py, `_rescan`): folder
stamps. That is also what happens when the journal is replaced: past LIMIT bytes (a writer starts a
new epoch) and on a full disk (the header is rewritten in place, which needs no new block).

Nothing here is fsynced: the journal only tells running processes about changes; a process that
starts reads the records themselves.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable

from index_server.storage import AlreadyExists, Stat, Storage, StorageFull

MAGIC = b"wheelfarm-changes "
HEADER_LEN = len(MAGIC) + 32 + 1
LIMIT = 1 << 20  # bytes; then a new epoch (about 20,000 changes)
LOCK = "changes"
RESCAN = "*"
FARM = "+farm"  # not a project name: those start with a letter or digit
# File times have a coarse clock: a stamp this recent may hide a second change in the same tick.
RACY_NS = 2_000_000_000


def _header() -> bytes:
    return MAGIC + uuid.uuid4().hex.encode() + b"\n"


class ChangeJournal:
    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self._epoch: bytes | None = None
        self._offset = 0
        self._stable: Stat | None = None  # a stat fully read and older than RACY_NS

    # -- writing ----------------------------------------------------------------------------
    def announce(self, entries: Iterable[str]) -> None:
        """Append one line per entry (after the change itself is stored)."""
        data = "".join(f"{e}\n" for e in entries).encode()
        try:
            try:
                size = self.storage.append(self.key, data)
            except FileNotFoundError:
                self._start()
                size = self.storage.append(self.key, data)
        except StorageFull:
            # The change is stored; other processes must still notice it. Rewriting the header in
            # place needs no new block: every reader sees another epoch and re-reads everything.
            self.storage.rewrite_in_place(self.key, _header())
            return
        if size > LIMIT:
            with self.storage.locked(LOCK):
                st = self.storage.stat(self.key)
                if st is not None and st.size > LIMIT:
                    self.storage.put_bytes(self.key, _header())

    def _start(self) -> None:
        """Create the journal if it is missing (another process may do so at the same time)."""
        with contextlib.suppress(AlreadyExists):
            self.storage.put_bytes(self.key, _header(), overwrite=False)

    def ensure(self) -> None:
        """At start: a journal with a valid header (replacing a stamp left by an older version)."""
        try:
            with self.storage.open(self.key) as fh:
                head = fh.read(HEADER_LEN)
        except FileNotFoundError:
            self._start()
            return
        if not _valid(head):
            self.storage.put_bytes(self.key, _header())

    # -- reading ----------------------------------------------------------------------------
    def unchanged(self) -> bool:
        """True when nothing was appended since the last read (one stat); False means: read()."""
        st = self.storage.stat(self.key)
        return st is not None and st == self._stable

    def read(self) -> list[str] | None:
        """The entries appended since the last call, or None: re-read everything (the first call,
        another epoch, or anything this reader cannot follow). The new position is taken before the
        caller re-reads, so nothing written meanwhile is missed (an entry may be seen twice)."""
        st = self.storage.stat(self.key)
        try:
            # Header and lines through one descriptor: a journal replaced meanwhile is not mixed up.
            with self.storage.open(self.key) as fh:
                head = fh.read(HEADER_LEN)
                size = fh.seek(0, os.SEEK_END)
                if head != self._epoch or size < self._offset:
                    fh.seek(0)
                    self._epoch, self._offset = head, fh.read().rfind(b"\n") + 1
                    self._settle(st)
                    return None
                fh.seek(self._offset)
                delta = fh.read()
        except FileNotFoundError:
            rescan = self._epoch is not None
            self._epoch, self._offset, self._stable = None, 0, None
            return None if rescan else []
        end = delta.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        self._settle(st)
        try:
            return delta[:end].decode("ascii").splitlines()
        except UnicodeDecodeError:
            return None

    def _settle(self, st: Stat | None) -> None:
        """Trust `st` as "nothing new" only once it was read to its end and is older than a tick."""
        ok = st is not None and self._offset == st.size and time.time_ns() - st.mtime_ns >= RACY_NS
        self._stable = st if ok else None


def _valid(head: bytes) -> bool:
    if len(head) != HEADER_LEN or not head.startswith(MAGIC) or not head.endswith(b"\n"):
        return False
    try:
        int(head[len(MAGIC) : -1], 16)
    except ValueError:
        return False
    return True


__all__ = ["FARM", "RESCAN", "ChangeJournal"]
