"""Subscriber access in the ledger: SMS codes, rate-limit hits and second copies.

The codes' hashing and comparison are the API's (``api/access.py``): the ledger keeps a
salted HMAC of each code and never sees one; it owns the compare-and-set updates that
make a code single-use and its wrong tries bounded under any race. Rate limits are
fixed-window counters, one atomic upsert a hit. A second copy is recorded once per
invoice, whoever asks and however often.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from invoicer.ledger.db import Database
from invoicer.ledger.schema import rate_limits, second_copies, sms_codes

__all__ = ["MAX_CODE_ATTEMPTS", "AccessStore", "SecondCopy", "SmsCode"]

#: Wrong tries after which a code is dead, whatever is typed next.
MAX_CODE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class SmsCode:
    """One ``sms_codes`` row (the code itself is not in it: only its salted HMAC)."""

    id: int
    phone: str
    operator_id: str
    account: str
    salt: str
    code_hash: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    superseded_at: datetime | None


@dataclass(frozen=True, slots=True)
class SecondCopy:
    """One ``second_copies`` row: the duplicate of an invoice, as archived."""

    invoice_id: int
    archive_key: str
    sha256: str
    size: int
    pages: int | None
    renderer_version: str
    created_at: datetime


class AccessStore:
    """The ``sms_codes``, ``rate_limits`` and ``second_copies`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- SMS codes

    def add_code(self, *, phone: str, operator_id: str, account: str, salt: str,
                 code_hash: str, ttl: timedelta) -> SmsCode:
        """Record a new code for ``phone``; earlier live codes of the phone stop working
        (only the latest SMS counts, so a flood of requests does not multiply the odds
        of a guess)."""
        now = self._db.now()
        with self._db.write() as conn:
            conn.execute(
                sms_codes.update()
                .where(sms_codes.c.phone == phone, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None))
                .values(superseded_at=now))
            row = conn.execute(
                sms_codes.insert()
                .values(phone=phone, operator_id=operator_id, account=account, salt=salt,
                        code_hash=code_hash, attempts=0, created_at=now,
                        expires_at=now + ttl)
                .returning(*sms_codes.c)
            ).one()
        return SmsCode(**row._mapping)

    def live_code(self, phone: str) -> SmsCode | None:
        """The phone's code that may still be tried: latest, unexpired, unused, not
        superseded, fewer than :data:`MAX_CODE_ATTEMPTS` wrong tries."""
        now = self._db.now()
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(sms_codes)
                .where(sms_codes.c.phone == phone, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None), sms_codes.c.expires_at > now,
                       sms_codes.c.attempts < MAX_CODE_ATTEMPTS)
                .order_by(sms_codes.c.id.desc())
                .limit(1)
            ).one_or_none()
        return SmsCode(**row._mapping) if row else None

    def use_code(self, code_id: int) -> bool:
        """Spend a code that matched: True for exactly one caller, and only while the
        code is live (compare-and-set, so two racing right answers open one session)."""
        now = self._db.now()
        with self._db.write() as conn:
            return conn.execute(
                sms_codes.update()
                .where(sms_codes.c.id == code_id, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None), sms_codes.c.expires_at > now,
                       sms_codes.c.attempts < MAX_CODE_ATTEMPTS)
                .values(used_at=now)
            ).rowcount == 1

    def wrong_try(self, code_id: int) -> None:
        """Count a wrong try against a code (atomically; it dies at the limit)."""
        with self._db.write() as conn:
            conn.execute(
                sms_codes.update()
                .where(sms_codes.c.id == code_id, sms_codes.c.used_at.is_(None))
                .values(attempts=sms_codes.c.attempts + 1))

    # ---------------------------------------------------------------- rate limits

    def hit(self, buckets: Iterable[str], window: timedelta) -> list[int]:
        """Count one hit in each bucket's current fixed window; returns the hits so far
        in those windows (this one included). One transaction, one upsert a bucket."""
        now = self._db.now()
        seconds = int(window.total_seconds())
        start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
        counts = []
        with self._db.write() as conn:
            for bucket in buckets:
                stmt = (
                    self._db.insert(rate_limits)
                    .values(bucket=bucket, window_start=start, hits=1)
                    .on_conflict_do_update(index_elements=["bucket", "window_start"],
                                           set_={"hits": rate_limits.c.hits + 1})
                    .returning(rate_limits.c.hits)
                )
                counts.append(int(conn.execute(stmt).scalar_one()))
        return counts

    def forget(self, older_than: timedelta) -> int:
        """Drop counters whose window began before ``older_than`` ago, and codes that
        expired as long ago; returns the rows removed."""
        cutoff = self._db.now() - older_than
        with self._db.write() as conn:
            n = conn.execute(
                rate_limits.delete().where(rate_limits.c.window_start < cutoff)).rowcount
            n += conn.execute(sms_codes.delete().where(sms_codes.c.expires_at < cutoff)).rowcount
        return n

    # ---------------------------------------------------------------- second copies

    def second_copy(self, invoice_id: int) -> SecondCopy | None:
        """The invoice's second copy, if one was made."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(second_copies).where(
                second_copies.c.invoice_id == invoice_id)).one_or_none()
        return SecondCopy(**row._mapping) if row else None

    def record_second_copy(self, invoice_id: int, *, archive_key: str, sha256: str,
                           size: int, pages: int | None, renderer_version: str
                           ) -> SecondCopy:
        """Record the archived second copy; if one is recorded already (a racing
        request), that one is returned and this call changes nothing."""
        stmt = (
            self._db.insert(second_copies)
            .values(invoice_id=invoice_id, archive_key=archive_key, sha256=sha256,
                    size=size, pages=pages, renderer_version=renderer_version,
                    created_at=self._db.now())
            .on_conflict_do_nothing(index_elements=["invoice_id"])
            .returning(*second_copies.c)
        )
        with self._db.write() as conn:
            row = conn.execute(stmt).one_or_none()
            if row is None:
                row = conn.execute(sa.select(second_copies).where(
                    second_copies.c.invoice_id == invoice_id)).one()
        return SecondCopy(**row._mapping)
