"""Subscribers choose e-invoice, paper or both; which choice an invoice follows.

**Choosing** (after an SMS-code login, on the page or through the API):

- ``paper``: counts at once; the postal address is the one on file (the record's).
- ``electronic`` / ``both``: with an e-mail address, which must be confirmed first: a
  link goes to it (through the service's mailer), signed (HMAC, a key derived from the
  link secret for this purpose only, so no other token passes for it), expiring
  (:data:`CONFIRM_TTL`) and single use (the ledger's compare-and-set). Until then the
  account's previous choice stands.

Every choice is a ledger row with when and how (``ledger.preferences``). When one
takes effect, :func:`preference_changed` is called: the one place the billing system
is told (``subscriber.preference_changed``).

**Precedence** (:func:`apply_preference`, called by ``workflows.dispatch`` before it
routes an invoice). The choice in force for an invoice is the account's last one
confirmed before the invoice's number was claimed, so a retried dispatch routes the
same way whatever happens meanwhile. Then, by the operator's setting
(``operator_settings``, ``[self_service] preference_owner``):

- ``service``: the choice wins over the record's ``delivery.mode`` (and, for e-mail,
  over ``delivery.email``); everything else in ``delivery`` (phone, SMS notice, attach
  or link, e-invoice format) stays the record's. The first invoice routed so marks the
  choice applied.
- ``billing`` (the default): the record's ``delivery.mode`` is what goes out; the
  choice is applied (no longer pending) once a record arrives that follows it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from email_validator import EmailNotValidError, validate_email

from invoicer.billing.models import BillingRecord, DeliveryMode
from invoicer.delivery import links
from invoicer.delivery.email.notice import build_notice_message
from invoicer.delivery.links import InvalidLinkError, Keys, LinkClaims
from invoicer.ledger import Invoice, Ledger, Preference
from invoicer.operator_settings import operator_settings
from invoicer.resources import package_path

__all__ = [
    "CONFIRM_TTL",
    "ConfirmationMail",
    "InvalidEmail",
    "apply_preference",
    "awaiting",
    "choose",
    "confirm",
    "confirmation_key",
    "is_pending",
    "preference_changed",
]

log = logging.getLogger(__name__)

CONFIRM_TTL = timedelta(hours=24)
VIAS = ("page", "api")
_TOKEN_PREFIX = "preference:"


class InvalidEmail(ValueError):
    """The address given for electronic invoices is not one."""


@dataclass(frozen=True)
class ConfirmationMail:
    """What sending a confirmation link needs: the mailer (``delivery.email.Mailer``),
    the From address, where the link points, and the key the links are signed with."""

    mailer: object
    sender: str
    public_url: str
    key: Keys


def confirmation_key(link_secret: Keys) -> tuple[bytes, ...]:
    """The confirmation links' keys, derived from the service's link secret(s): during a
    rotation the first signs and every one verifies, as for every other token."""
    return tuple(hmac.new(secret, b"invoicer/email-confirmation", hashlib.sha256).digest()
                 for secret in links.keys(link_secret))


def is_pending(pref: Preference) -> bool:
    """Shown as pending: waiting for its link, or confirmed and not applied yet."""
    return pref.state == "unconfirmed" or (pref.state == "confirmed" and pref.applied_at is None)


def normalize_email(text: str) -> str:
    """The address as it will be used; :class:`InvalidEmail` if it is not one."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


@cache
def _texts() -> dict[str, dict[str, str]]:
    with open(package_path("templates", "email", "confirm_address.toml"), "rb") as f:
        return tomllib.load(f)


def _text(locale: str) -> dict[str, str]:
    table = _texts()
    return table.get(locale) or next(
        (v for k, v in table.items() if k.split("_")[0] == locale.split("_")[0]), table["en"])


def choose(ledger: Ledger, mail: ConfirmationMail, *, operator: str, account: str,
           mode: str, email: str | None, via: str, client: str | None, locale: str,
           operator_name: str, now: float) -> Preference:
    """Record a subscriber's choice; for e-mail, send the confirmation link.

    Raises :class:`InvalidEmail` (electronic without a valid address), ``ValueError``
    (an unknown mode or ``via``) and the mailer's ``DeliveryError`` (the choice is then
    recorded but waits; asking again sends a new link and retires this one).
    """
    if via not in VIAS:
        raise ValueError(f"via is one of {VIAS}")
    DeliveryMode(mode)  # ValueError for anything else
    if mode == "paper":
        pref = ledger.preferences.add(operator, account, mode=mode, email=None, via=via,
                                      client=client, confirmed_via=f"{via}-session")
        preference_changed(ledger, pref)
        return pref
    address = normalize_email(email or "")
    pref = ledger.preferences.add(operator, account, mode=mode, email=address, via=via,
                                  client=client)
    expires = int(now + CONFIRM_TTL.total_seconds())
    token = links.sign(LinkClaims(operator, account, f"{_TOKEN_PREFIX}{pref.id}", expires),
                       mail.key)
    link = f"{mail.public_url.rstrip('/')}/access/confirm/{token}?lang={locale}"
    words = _text(locale)
    values = {"operator": operator_name, "account": account, "link": link,
              "hours": int(CONFIRM_TTL.total_seconds() // 3600)}
    domain = mail.sender.rsplit("@", 1)[-1].strip("> ") or "localhost"
    message = build_notice_message(
        to=address, subject=words["subject"].format(**values),
        text=words["body"].format(**values), sender=mail.sender, sender_name=operator_name,
        message_id=f"<confirm-{pref.id}.{secrets.token_hex(6)}@{domain}>", locale=locale)
    mail.mailer.send(message)
    return pref


def awaiting(ledger: Ledger, key: Keys, token: str, *, now: float) -> Preference | None:
    """The choice a link names if the link would confirm it now (to show before the
    subscriber presses "Confirm"; opening the link changes nothing, so a mail scanner
    that follows links confirms nothing). ``None`` for a link altered, expired, already
    used, superseded by a newer choice, or naming a row of another account."""
    try:
        claims = links.verify(token, key, now=now)
    except InvalidLinkError:
        return None
    ident = claims.invoice.removeprefix(_TOKEN_PREFIX)
    if not claims.invoice.startswith(_TOKEN_PREFIX) or not ident.isdigit():
        return None
    row = ledger.preferences.get(int(ident))
    if row is None or (row.operator_id, row.account) != (claims.operator, claims.account):
        return None
    return row if row.state == "unconfirmed" else None


def confirm(ledger: Ledger, key: Keys, token: str, *, now: float) -> Preference | None:
    """Confirm the choice a link names: the confirmed row, once; ``None`` for every
    link :func:`awaiting` refuses, and for the second use of a good one."""
    row = awaiting(ledger, key, token, now=now)
    if row is None:
        return None
    confirmed = ledger.preferences.confirm(row.id, via="email-link")
    if confirmed is not None:
        preference_changed(ledger, confirmed)
    return confirmed


def preference_changed(ledger: Ledger, pref: Preference) -> None:
    """A subscriber's choice took effect (paper chosen, or an address confirmed).

    The call site of the ``subscriber.preference_changed`` webhook: the billing system
    is told here, once per choice (this is called only by the caller whose
    compare-and-set made the choice count). The ledger row already holds when and how.
    """
    log.info("delivery preference %s of %s/%s: %s (requested via %s at %s, confirmed "
             "via %s at %s)", pref.id, pref.operator_id, pref.account, pref.mode,
             pref.requested_via, pref.requested_at.isoformat(), pref.confirmed_via,
             pref.confirmed_at.isoformat() if pref.confirmed_at else None)


def apply_preference(ledger: Ledger, invoice: Invoice, record: BillingRecord
                     ) -> BillingRecord:
    """``record`` as it is to be delivered: with the subscriber's choice over its
    ``delivery.mode`` where the operator lets the service own it (see the module's
    docstring for the rule). Marks the choice applied when an invoice follows it."""
    pref = ledger.preferences.effective(record.operator.id, record.account.number,
                                        invoice.created_at)
    if pref is None:
        return record
    delivery = record.delivery
    if operator_settings(record.operator.id).service_owns_preference:
        update: dict[str, object] = {"mode": DeliveryMode(pref.mode)}
        if pref.email:
            update["email"] = pref.email
        record = record.model_copy(update={"delivery": delivery.model_copy(update=update)})
        follows = True
    else:
        follows = delivery.mode.value == pref.mode and (pref.email is None
                                                        or delivery.email == pref.email)
    if follows and pref.applied_at is None:  # a write only the first time
        ledger.preferences.mark_applied(pref.id, invoice.number)
    return record
