"""API keys in the ledger: who may call the HTTP API, in which role, for which operators.

Token generation, hashing and comparison are the API's (``api/keys.py``); the ledger only
keeps what they produce (a public prefix and the token's SHA-256) and never sees a token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from invoicer.ledger.db import Database
from invoicer.ledger.schema import API_KEY_ROLES, api_keys

__all__ = ["ApiKey", "ApiKeyStore"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One ``api_keys`` row: a key's public facts and the SHA-256 of its token."""

    id: int
    prefix: str
    secret_sha256: str
    name: str
    role: str
    operators: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None


class ApiKeyStore:
    """The ``api_keys`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, *, prefix: str, secret_sha256: str, name: str, role: str,
            operators: Iterable[str]) -> ApiKey | None:
        """Record a new key; ``None`` when ``prefix`` is taken (draw another token)."""
        if role not in API_KEY_ROLES:
            raise ValueError(f"unknown role {role!r}; known: {API_KEY_ROLES}")
        ops = sorted(set(operators))
        if not ops:
            raise ValueError("an API key needs at least one operator")
        with self._db.write() as conn:
            row = conn.execute(
                self._db.insert(api_keys)
                .values(prefix=prefix, secret_sha256=secret_sha256, name=name, role=role,
                        operators=ops, created_at=self._db.now())
                .on_conflict_do_nothing(index_elements=["prefix"])
                .returning(*api_keys.c)
            ).one_or_none()
        return _api_key(row) if row else None

    def by_prefix(self, prefix: str) -> ApiKey | None:
        """The key whose token starts with ``prefix`` (revoked ones included), or None."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.prefix == prefix)).one_or_none()
        return _api_key(row) if row else None

    def get(self, key_id: int) -> ApiKey | None:
        """The key with this id, or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        return _api_key(row) if row else None

    def all(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).all()
        return [_api_key(r) for r in rows]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key; True when this call revoked it, False when it already was.

        ``LookupError`` for an unknown id.
        """
        with self._db.write() as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._db.now())
            ).rowcount
            if not done and conn.execute(
                    sa.select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
                raise LookupError(f"no API key with id {key_id}")
        return done == 1


def _api_key(row: Any) -> ApiKey:
    values = dict(row._mapping)
    values["operators"] = tuple(values["operators"])
    return ApiKey(**values)
