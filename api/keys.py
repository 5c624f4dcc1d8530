"""API keys: one per client (a print shop, a billing system, ops), per role, per operators.

A token looks like ``ik_3f9a0c2d1e_Qm9…`` (``ik_``, a 10-character public prefix, ``_``,
43 characters = 256 random bits). It is shown once, when it is made; the ledger keeps
only the prefix (to find the row without scanning) and the SHA-256 of the whole token
(to check it). A plain SHA-256 suffices because the token is random, not a password:
there is nothing to guess from the hash. Checking compares digests in constant time,
and an unknown prefix costs the same hash and comparison as a known one.

Clients send the token as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``.
No or a wrong or revoked token: 401; a valid token of another role: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from invoicer.api.problems import Problem
from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.ledger import API_KEY_ROLES, ApiKey, Ledger

__all__ = ["ROLES", "IssuedKey", "authenticate", "create_key", "hash_token", "require_role"]

ROLES = API_KEY_ROLES
TOKEN_RE = re.compile(r"ik_([0-9a-f]{10})_[A-Za-z0-9_-]{43}")
_OPERATOR_RE = re.compile(IDENTIFIER_PATTERN)
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
# Compared against when the prefix is unknown, so that a miss takes as long as a hit.
_NO_KEY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just made: its row, and the token (shown once, never stored)."""

    key: ApiKey
    token: str


def hash_token(token: str) -> str:
    """The hex SHA-256 the ledger keeps for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(ledger: Ledger, *, role: str, operators: Iterable[str], name: str
               ) -> IssuedKey:
    """Make a key for ``role`` acting for ``operators``; the token is in the result only.

    ``ValueError`` for an unknown role, no operator, an operator id that is not a safe
    identifier, or an empty or control-character name.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    ops = sorted(set(operators))
    if not ops:
        raise ValueError("a key needs at least one operator")
    for op in ops:
        if not _OPERATOR_RE.fullmatch(op) or ".." in op:
            raise ValueError(f"not an operator id: {op!r}")
    if not _NAME_RE.fullmatch(name):
        raise ValueError("the name must be 1 to 128 characters, no control characters")
    store = ledger.api_keys
    for _ in range(8):  # 40-bit prefixes: a collision is rare, two in a row rarer still
        prefix = secrets.token_hex(5)
        token = f"ik_{prefix}_{secrets.token_urlsafe(32)}"
        key = store.add(prefix=prefix, secret_sha256=hash_token(token), name=name,
                        role=role, operators=ops)
        if key is not None:
            return IssuedKey(key, token)
    raise RuntimeError("could not draw an unused key prefix")  # pragma: no cover


def authenticate(ledger: Ledger, token: str | None) -> ApiKey | None:
    """The active key ``token`` belongs to, or ``None`` (unknown, wrong, revoked)."""
    match = TOKEN_RE.fullmatch(token or "")
    key = ledger.api_keys.by_prefix(match.group(1)) if match else None
    expected = key.secret_sha256 if key is not None else _NO_KEY
    # Digests of equal length compared in constant time: no timing tells how much of a
    # guessed token was right.
    if not hmac.compare_digest(hash_token(token or ""), expected):
        return None
    if key is None or not key.active:
        return None
    return key


# auto_error=False: a missing header is our 401 problem, not FastAPI's own 403.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                       description="The same token in an `X-API-Key` header")

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="invoicer"'}


def current_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    """The caller's key (a dependency); 401 problem without a valid one."""
    token = bearer.credentials if bearer is not None else header
    if not token:
        raise Problem(401, "unauthenticated", "An API key is required",
                      detail="Send your key as 'Authorization: Bearer <token>'.",
                      headers=_UNAUTHORIZED)
    key = authenticate(request.app.state.ledger, token)
    if key is None:
        # One answer for unknown, mistyped and revoked keys: which one it was is the
        # holder's to find out from whoever issued it, not a prober's.
        raise Problem(401, "unauthenticated", "The API key is not valid",
                      headers={"WWW-Authenticate": 'Bearer realm="invoicer", '
                                                   'error="invalid_token"'})
    return key


def require_role(role: str) -> Callable[..., ApiKey]:
    """A dependency: the caller's key, which must have ``role`` (else 403)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def dependency(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if key.role != role:
            raise Problem(403, "wrong-role", "This API key may not use this endpoint",
                          detail=f"These endpoints need a {role} key.")
        return key

    return dependency
