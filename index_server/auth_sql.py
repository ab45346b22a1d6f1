"""API tokens in the index's SQL database (`--database`), shared by every host: one row per token,
created and revoked each in its own transaction, so two hosts (or two `wheelfarm token` commands)
changing tokens at once never undo each other. Only digests are stored, as in auth/tokens.json.

Tokens an index kept in its Storage before it was given a database are imported once, at the first
start with the database (index_server.database.import_once); the Storage's copy is not read again.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import sqlalchemy as sa

from index_server.auth import PREFIX, SCOPES, TOKENS, Scope, Token, TokenStore, _digest
from index_server.catalog import now_iso
from index_server.database import CHECK_EVERY, create_tables, engine_for, import_once, metadata
from index_server.storage import Storage

tokens_table = sa.Table(
    "index_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.String(40), nullable=False),
)
FIELDS = ("id", "name", "scope", "sha256", "created")


class SqlTokenStore(TokenStore):
    def __init__(self, storage: Storage, url: str) -> None:
        super().__init__(storage)
        self.engine = engine_for(url)
        create_tables(self.engine)
        self._read_at = float("-inf")
        self._guard = threading.Lock()
        self._import(storage)

    def _import(self, storage: Storage) -> None:
        try:
            raw = json.loads(storage.read_bytes(TOKENS))["tokens"]
        except FileNotFoundError:
            raw = []
        rows = [(tokens_table, {k: t[k] for k in FIELDS}) for t in raw]
        import_once(self.engine, "tokens", rows)

    def tokens(self) -> list[Token]:
        now = time.monotonic()
        if now - self._read_at >= CHECK_EVERY:
            with self._guard:
                self._tokens = self._read()
                self._read_at = now
        return self._tokens

    def _read(self) -> list[Token]:
        query = sa.select(tokens_table).order_by(tokens_table.c.created, tokens_table.c.id)
        with self.engine.connect() as conn:
            return [Token(**{k: row._mapping[k] for k in FIELDS}) for row in conn.execute(query)]

    def create(self, name: str, scope: Scope = "upload") -> tuple[Token, str]:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        secret = PREFIX + secrets.token_urlsafe(32)
        token = Token(secrets.token_hex(4), name, scope, _digest(secret), now_iso())
        with self.engine.begin() as conn:
            conn.execute(tokens_table.insert().values(**{k: getattr(token, k) for k in FIELDS}))
        self._read_at = float("-inf")
        return token, secret

    def revoke(self, token_id: str) -> Token:
        match = sa.or_(tokens_table.c.id == token_id, tokens_table.c.name == token_id)
        with self.engine.begin() as conn:
            # The oldest match, as the file store does; its row locked until it is deleted.
            row = conn.execute(
                sa.select(tokens_table)
                .where(match)
                .order_by(tokens_table.c.created, tokens_table.c.id)
                .limit(1)
                .with_for_update()
            ).first()
            if row is None:
                raise LookupError(f"no token with id or name {token_id!r}")
            conn.execute(tokens_table.delete().where(tokens_table.c.id == row.id))
        self._read_at = float("-inf")
        return Token(**{k: row._mapping[k] for k in FIELDS})


def tokens_for(storage: Storage, database: str | None) -> TokenStore:
    """The tokens in the database when one is given, else in the Storage (auth/tokens.json)."""
    return SqlTokenStore(storage, database) if database else TokenStore(storage)


__all__ = ["SqlTokenStore", "tokens_for"]
