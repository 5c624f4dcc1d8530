"""Subscriber access: who may see which account's invoices, and for how long.

A subscriber never has a password. They hold a **grant** for one account of one
operator, in one of two forms, both HMAC-signed by the service (``delivery.links``):

- an **invoice link** (the token in ``/invoices/<token>.pdf`` of an invoice e-mail; 7
  days): it opens that invoice, and the account's history;
- a **session** (after the right SMS code; 15 minutes): it opens the account's history
  and every invoice in it.

The two are signed with different keys derived from the one link secret, so neither
passes for the other. During a rotation (several secrets configured) the first secret
signs and every one verifies, links, sessions and SMS codes alike.

**Business accounts** (:mod:`api.fleet`): the SMS code also opens the account for the
phones the billing system registered as its **fleet managers** (checked first), and,
where the operator's brand says ``[self_service] line_access = "own_line"``, opens
**one line** of it for that line's own phone (a phone among ``services[].id``). A line
session is signed with a key of its own: :meth:`AccessService.grant` never accepts it,
so nothing account-wide (history, invoices, second copies) opens for it; only
:meth:`AccessService.line_grant` does, for that line's section and call details.

The links handed out in a history expire with the grant they were made under (an SMS
session's links live 15 minutes, not 7 days).

**SMS codes**: six random digits, valid 15 minutes, single use, stored only as a salted
HMAC keyed with a secret the database does not hold, compared in constant time; a code
dies after five wrong tries and a newer code replaces it. Asking for codes and trying
them are rate-limited per phone number and per client address. Whether a number
belongs to a subscriber never shows: the answer to "send me a code" is the same, and
the lookup and sending happen after the answer has gone (see ``api/subscriber.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from invoicer.delivery import links
from invoicer.delivery.archive import Archive
from invoicer.delivery.errors import DeliveryError
from invoicer.delivery.links import InvalidLinkError, Keys, LinkClaims, keys
from invoicer.delivery.sms import SmsGateway, render_access_code
from invoicer.ledger import Invoice, Ledger
from invoicer.ledger.invoices import LinkedDocument, ListedInvoice
from invoicer.operator_settings import operator_settings
from invoicer.workflows.second_copy import canonical_key

__all__ = ["AccessLimits", "AccessService", "Grant", "RateLimited"]

log = logging.getLogger(__name__)

PHONE_RE = re.compile(r"\+[1-9][0-9]{1,14}")
CODE_RE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class AccessLimits:
    """How long codes and sessions live, and how often one may ask and try."""

    code_ttl: timedelta = timedelta(minutes=15)
    session_ttl: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(minutes=15)
    codes_per_phone: int = 3
    codes_per_client: int = 30
    tries_per_phone: int = 10
    tries_per_client: int = 60
    #: e-invoice/paper choices per account and window: each electronic one sends an
    #: e-mail to an address the caller picks, so it is bounded like the SMS codes.
    choices_per_account: int = 5


class RateLimited(Exception):
    """Too many requests in the current window; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Grant:
    """What a subscriber's token opens: one account (and, for a link, one invoice)."""

    operator: str
    account: str
    expires: int
    invoice: str | None = None  # set for an invoice link
    kind: str = "session"  # or "link", or "line" (one line of a business account)
    line: str | None = None  # set for a line session: the line's phone


def line_access(operator: str) -> str:
    """The operator's ``[self_service] line_access``: ``none`` or ``own_line``."""
    return operator_settings(operator).line_access


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"invoicer/" + purpose, hashlib.sha256).digest()


class AccessService:
    """Grants, links and SMS codes over the ledger, an SMS gateway and the link secret."""

    def __init__(self, ledger: Ledger, sms: SmsGateway | None, secret: Keys, *,
                 limits: AccessLimits | None = None,
                 clock: Callable[[], datetime] | None = None,
                 archive: Archive | None = None) -> None:
        self.ledger = ledger
        self.archive = archive  # for the operator's name in the SMS (its record)
        self.store = ledger.access
        self.sms = sms
        self.limits = limits or AccessLimits()
        self.clock = clock or ledger.clock
        secrets_ = keys(secret)  # the signing one first, then older ones still valid
        self._link_key = secrets_  # the e-mails' links: delivery.links, unchanged
        self._session_key = tuple(_derive(s, b"subscriber-session") for s in secrets_)
        self._code_keys = tuple(_derive(s, b"sms-code") for s in secrets_)
        # Rate-limit buckets need no rotation: a new secret starts fresh windows.
        self._bucket_key = _derive(secrets_[0], b"rate-limit-bucket")
        # A business line's session, and detailed-bill links: keys of their own.
        self._line_key = tuple(_derive(s, b"line-session") for s in secrets_)
        self._detail_key = tuple(_derive(s, b"detailed-bill-link") for s in secrets_)

    def now(self) -> float:
        return self.clock().timestamp()

    # ---------------------------------------------------------------- grants and links

    def grant(self, token: str | None) -> Grant | None:
        """The grant ``token`` carries (a session or an invoice link), or ``None`` for
        anything else: malformed, altered, expired or signed with another key."""
        if not token or len(token) > 1024:
            return None
        for key, kind in ((self._session_key, "session"), (self._link_key, "link")):
            try:
                claims = links.verify(token, key, now=self.now())
            except InvalidLinkError:
                continue
            return Grant(claims.operator, claims.account, claims.expires,
                         claims.invoice if kind == "link" else None, kind)
        return None

    def session_token(self, operator: str, account: str) -> tuple[str, int]:
        """A session for the account, valid ``session_ttl`` from now: (token, expires)."""
        expires = int(self.now() + self.limits.session_ttl.total_seconds())
        return links.sign(LinkClaims(operator, account, "", expires), self._session_key), \
            expires

    def invoice_token(self, invoice: Invoice | ListedInvoice, expires: int) -> str:
        """The token of ``/invoices/<token>.pdf`` for ``invoice``, until ``expires``."""
        return links.sign_fields(invoice.operator_id, invoice.account, invoice.number,
                                 expires, self._link_key[0])

    def linked_invoice(self, token: str) -> Invoice | None:
        """The archived invoice an invoice link names, if the link is valid and every
        part of it (operator, account, number) matches the ledger; else ``None``."""
        claims = self._link_claims(token)
        if claims is None:
            return None
        return self.ledger.invoices.account_invoice(claims.operator, claims.account,
                                                    claims.invoice)

    async def linked_document_async(self, token: str) -> LinkedDocument | None:
        """:meth:`linked_invoice` on an event loop (the ledger's look-up awaited), as a
        download needs it: the same checks, the columns that name the archived
        documents only (:class:`~invoicer.ledger.invoices.LinkedDocument`)."""
        claims = self._link_claims(token)
        if claims is None:
            return None
        return await self.ledger.invoices.linked_document_async(
            claims.operator, claims.account, claims.invoice)

    def _link_claims(self, token: str) -> LinkClaims | None:
        try:
            return links.verify(token, self._link_key, now=self.now())
        except InvalidLinkError:
            return None

    # ---------------------------------------------------------------- rate limits

    def _check(self, *buckets: tuple[str, int]) -> None:
        """Count a hit in every bucket; ``RateLimited`` if any is over its limit."""
        digests = [hmac.new(self._bucket_key, name.encode(), hashlib.sha256).hexdigest()
                   for name, _ in buckets]
        counts = self.store.hit(digests, self.limits.window)
        if any(n > limit for n, (_, limit) in zip(counts, buckets, strict=True)):
            seconds = int(self.limits.window.total_seconds())
            raise RateLimited(seconds - int(self.now()) % seconds)

    def admit_choice(self, operator: str, account: str, client: str) -> None:
        """Count an e-invoice/paper choice; ``RateLimited`` beyond the limits."""
        self._check((f"choice-account:{operator}:{account}", self.limits.choices_per_account),
                    (f"code-client:{client}", self.limits.codes_per_client))

    # ---------------------------------------------------------------- SMS codes

    def _hash(self, salt: str, phone: str, code: str, key: bytes | None = None) -> str:
        return hmac.new(key or self._code_keys[0], f"{salt}:{phone}:{code}".encode(),
                        hashlib.sha256).hexdigest()

    def admit_code_request(self, phone: str, client: str) -> None:
        """Count a request for a code; ``RateLimited`` beyond the limits. The same for
        every number, a subscriber's or not."""
        self._check((f"code-phone:{phone}", self.limits.codes_per_phone),
                    (f"code-client:{client}", self.limits.codes_per_client))

    def send_code(self, phone: str) -> bool:
        """Make a code for the phone's latest invoice's account and send it by SMS.

        Runs after the answer has gone (a background task): ``False`` and nothing sent
        when the number has no archived invoice. A failing gateway is logged; the
        subscriber asks again.
        """
        invoice = self.sign_in_invoice(phone)
        if invoice is None or self.sms is None:
            return False
        code = f"{secrets.randbelow(10**6):06d}"
        salt = secrets.token_hex(16)
        row = self.store.add_code(phone=phone, operator_id=invoice.operator_id,
                                  account=invoice.account, salt=salt,
                                  code_hash=self._hash(salt, phone, code),
                                  ttl=self.limits.code_ttl)
        minutes = int(self.limits.code_ttl.total_seconds() // 60)
        text = render_access_code(invoice.operator_id, invoice.locale, code, minutes,
                                  name=self._operator_name(invoice))
        try:
            self.sms.send(phone, text.text, reference=f"access-code-{row.id}")
        except DeliveryError as exc:
            log.warning("access code %s for an invoice of %s not sent: %s", row.id,
                        invoice.operator_id, exc)
            return False
        return True

    def _operator_name(self, invoice: Invoice) -> str | None:
        """The name the SMS opens with when ``operators.toml`` has none: the operator's
        setting, else the name on its latest invoice (never its bare id)."""
        name = operator_settings(invoice.operator_id).name
        if name or self.archive is None or not invoice.archive_key:
            return name
        try:
            record = json.loads(self.archive.get(canonical_key(invoice)))
            return str(record["operator"]["name"])
        except (DeliveryError, ValueError, KeyError, TypeError) as exc:
            log.warning("operator name of %s unavailable: %s", invoice.operator_id, exc)
            return None

    def redeem(self, phone: str, code: str, client: str) -> tuple[str, int, Grant] | None:
        """A session for the right, live code of ``phone``; ``None`` otherwise (no code,
        wrong, expired, used, superseded, too many wrong tries, not a subscriber: one
        answer). ``RateLimited`` beyond the limits, checked first."""
        self._check((f"try-phone:{phone}", self.limits.tries_per_phone),
                    (f"try-client:{client}", self.limits.tries_per_client))
        live = self.store.live_code(phone)
        salt = live.salt if live is not None else "0" * 32
        expected = live.code_hash if live is not None else "0" * 64
        # Always one HMAC and one constant-time comparison per configured secret, live
        # code or not (a code sent just before a rotation still works).
        given = code if CODE_RE.fullmatch(code) else "x"
        matched = False
        for key in self._code_keys:
            matched |= hmac.compare_digest(self._hash(salt, phone, given, key), expected)
        if live is None:
            return None
        if not matched:
            self.store.wrong_try(live.id)
            return None
        if not self.store.use_code(live.id):
            return None  # a racing right answer, or the code died meanwhile
        line = self.scope(phone, live.operator_id, live.account)
        if line is None:
            return None  # no longer entitled (a manager removed meanwhile, a setting)
        if line:
            expires = int(self.now() + self.limits.session_ttl.total_seconds())
            token = links.sign(LinkClaims(live.operator_id, live.account, line, expires),
                               self._line_key)
            return token, expires, Grant(live.operator_id, live.account, expires,
                                         kind="line", line=line)
        token, expires = self.session_token(live.operator_id, live.account)
        return token, expires, Grant(live.operator_id, live.account, expires)

    # ---------------------------------------------------------------- business accounts

    def sign_in_invoice(self, phone: str) -> Invoice | None:
        """The invoice whose account (and language) an SMS code for ``phone`` is for:
        the latest of the account it manages, else the latest sent to it, else (where
        the operator lets lines in) the latest that covers it as a line."""
        invoices, fleet = self.ledger.invoices, self.ledger.fleet
        managed = fleet.managed_by(phone)
        if managed is not None:
            latest = invoices.for_account(managed.operator_id, managed.account, limit=1)
            if latest:
                return latest[0]
        invoice = invoices.latest_for_phone(phone)
        if invoice is not None:
            return invoice
        invoice = fleet.latest_for_line(phone)
        if invoice is not None and line_access(invoice.operator_id) == "own_line":
            return invoice
        return None

    def scope(self, phone: str, operator: str, account: str) -> str | None:
        """What a right code of ``phone`` opens on the account: "" for all of it (a
        fleet manager, or the phone the account's invoices are sent to), the phone
        itself for its own line only, ``None`` for nothing. The least it can be."""
        if self.ledger.fleet.is_manager(operator, account, phone):
            return ""
        sent = self.ledger.invoices.latest_for_phone(phone)
        if sent is not None and (sent.operator_id, sent.account) == (operator, account):
            return ""
        line = self.ledger.fleet.latest_for_line(phone)
        if line is not None and (line.operator_id, line.account) == (operator, account) \
                and line_access(operator) == "own_line":
            return phone
        return None

    def line_grant(self, token: str | None) -> Grant | None:
        """The grant of a line session token, or ``None`` for anything else."""
        if not token or len(token) > 1024:
            return None
        try:
            claims = links.verify(token, self._line_key, now=self.now())
        except InvalidLinkError:
            return None
        if line_access(claims.operator) != "own_line":
            return None  # the operator closed lines' access since
        return Grant(claims.operator, claims.account, claims.expires, kind="line",
                     line=claims.invoice)

    # ---------------------------------------------------------------- detailed bills

    def detail_token(self, invoice: Invoice, line: str, expires: int) -> str:
        """The token of ``/details/<token>.pdf|.csv``: the detailed bill of ``invoice``
        (of its line ``line``, "" for all), until ``expires``."""
        return links.sign(LinkClaims(invoice.operator_id, invoice.account,
                                     f"{invoice.number}/{line}", expires), self._detail_key)

    def linked_detail(self, token: str) -> tuple[Invoice, str] | None:
        """The archived invoice and line a detailed-bill link names, if the link is
        valid and the invoice is the account's; else ``None``."""
        try:
            claims = links.verify(token, self._detail_key, now=self.now())
        except InvalidLinkError:
            return None
        number, sep, line = claims.invoice.partition("/")
        if not sep:
            return None
        invoice = self.ledger.invoices.account_invoice(claims.operator, claims.account,
                                                       number)
        return None if invoice is None else (invoice, line)

