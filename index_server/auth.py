"""API tokens: created by `wheelfarm token create`, presented with HTTP Basic as user `__token__`.

Only a sha256 of each token is stored (in storage key auth/tokens.json): tokens are 256-bit random
strings, so a fast hash is enough, and a leaked tokens file gives nobody a working token. Checks
compare digests with hmac.compare_digest against every stored token, so timing tells nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Literal

from index_server.catalog import RACY_NS, now_iso
from index_server.storage import Stat, Storage

TOKENS = "auth/tokens.json"
LOCK = "tokens"
PREFIX = "wf_"
Scope = Literal["upload", "read"]
SCOPES: tuple[Scope, ...] = ("upload", "read")


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scope: Scope  # "upload" may upload, yank and read; "read" may only read a private index
    sha256: str
    created: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._stat: Stat | None = None
        self._tokens: list[Token] = []

    def tokens(self) -> list[Token]:
        st = self.storage.stat(TOKENS)
        if st != self._stat or (st and time.time_ns() - st.mtime_ns < RACY_NS):
            with self._lock:
                self._tokens = self._read()
                self._stat = st
        return self._tokens

    def _read(self) -> list[Token]:
        try:
            raw = json.loads(self.storage.read_bytes(TOKENS))
        except FileNotFoundError:
            return []
        return [Token(**t) for t in raw["tokens"]]

    def _write(self, tokens: list[Token]) -> None:
        body = {"tokens": [asdict(t) for t in tokens]}
        self.storage.put_bytes(TOKENS, json.dumps(body, indent=1).encode())

    def create(self, name: str, scope: Scope = "upload") -> tuple[Token, str]:
        """Make a token; returns its record and the secret, which is shown once and never stored."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        secret = PREFIX + secrets.token_urlsafe(32)
        token = Token(secrets.token_hex(4), name, scope, _digest(secret), now_iso())
        # Read, change and replace under one lock: two processes that both read the old list would
        # otherwise each write it back with only their own change (a lost token, an undone revoke).
        with self.storage.locked(LOCK):
            self._write([*self._read(), token])
        return token, secret

    def revoke(self, token_id: str) -> Token:
        with self.storage.locked(LOCK):
            tokens = self._read()
            for t in tokens:
                if t.id == token_id or t.name == token_id:
                    self._write([u for u in tokens if u is not t])
                    return t
        raise LookupError(f"no token with id or name {token_id!r}")

    def check(self, secret: str) -> Token | None:
        """The token whose secret this is, or None. Every stored digest is compared."""
        presented = _digest(secret)
        found = None
        for t in self.tokens():
            if hmac.compare_digest(presented, t.sha256):
                found = t
        return found


class TokenRefused(Exception):
    """No upload-scope token: `code` is 401 (none, or not ours) or 403 (read-only)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def require_upload_token(
    tokens: TokenStore, authorization: str | None, *, missing: str, verb: str
) -> Token:
    """The upload-scope token an HTTP Basic header presents, or TokenRefused.

    `missing` is the message when no token is sent; `verb` says what a read-only token may not do.
    """
    secret = basic_token(authorization)
    if secret is None:
        raise TokenRefused(401, missing)
    token = tokens.check(secret)
    if token is None:
        raise TokenRefused(401, "invalid or revoked token")
    if token.scope != "upload":
        raise TokenRefused(403, f"token {token.name!r} may read but not {verb}")
    return token


def basic_token(authorization: str | None) -> str | None:
    """The password of an HTTP Basic header whose user is __token__, else None."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or user != "__token__" or not password:
        return None
    return password
