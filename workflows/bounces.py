"""What the far end's word changes: bounces, complaints and SMS receipts, recorded once,
and the fallback they set off.

However a report arrives (the SMTP/LMTP receiver, an IMAP mailbox, a provider's
webhook, an SMS gateway's receipt) it ends here:

- a **hard bounce** (DSN ``5.x.x``, an undeliverable SMS) moves the delivery to
  ``bounced`` with the status and diagnostic, stops e-mail to that address (a
  suppression), and falls back per the operator's policy (:mod:`workflows.fallback`):
  a fallback SMS goes at once when a gateway is at hand, else it waits ``pending`` for
  :func:`send_waiting`; paper joins the print queue;
- a **soft bounce** (``4.x.x``) is recorded on the delivery, nothing more: the sending
  MTA is still trying;
- a **complaint** (ARF) stops e-mail to the address; the e-mail itself was delivered;
- a **delivery receipt** is recorded.

The delivery is found by the signed VERP address (:class:`~delivery.bounces.Verp`) the
report was sent to or names, else by the Message-ID it quotes; a report naming no
delivery of ours is ``unmatched`` and changes nothing. Every step is idempotent: the
same bounce twice (a redelivery, the same DSN by SMTP and by IMAP) changes the ledger
once and makes one fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from invoicer.billing import BillingRecord, parse_record
from invoicer.delivery.archive import Archive
from invoicer.delivery.bounces import Report, Verp
from invoicer.delivery.sms import Receipt
from invoicer.ledger import Delivery, Invoice, Ledger
from invoicer.workflows.dispatch import Channels, send_fallback, settle
from invoicer.workflows.fallback import Policy, fall_back

__all__ = ["Intake", "Taken", "send_waiting", "take_receipt", "take_report"]

log = logging.getLogger(__name__)

Taken = Literal["bounced", "soft", "complaint", "delivered", "duplicate", "unmatched",
                "ignored"]


@dataclass
class Intake:
    """What recording a report needs. ``channels``: to send a fallback SMS at once
    (None: it waits for :func:`send_waiting`); ``verp``: to read return paths."""

    ledger: Ledger
    archive: Archive
    verp: Verp | None
    policy: Policy
    channels: Channels | None = None


def _find(report: Report, intake: Intake) -> Delivery | None:
    if intake.verp is not None:
        for address in report.addresses:
            delivery_id = intake.verp.delivery_of(address)
            if delivery_id is not None:
                found = intake.ledger.deliveries.get(delivery_id)
                if found is not None and found.channel == "email":
                    return found
    if report.message_id:
        return intake.ledger.deliveries.find("email", report.message_id)
    return None


def take_report(report: Report, intake: Intake) -> Taken:
    """Record one bounce or complaint; returns what it was taken for."""
    if report.kind == "none":
        log.info("bounce address: not a bounce (%s)", report.why)
        return "ignored"
    delivery = _find(report, intake)
    if delivery is None:
        log.warning("bounce address: a %s that names no delivery of ours", report.kind)
        return "unmatched"
    ledger = intake.ledger
    invoice = ledger.invoices.get_by_id(delivery.invoice_id)
    address = delivery.recipient or report.recipient
    if report.kind == "complaint":
        if address and invoice is not None:
            ledger.deliveries.suppress(invoice.operator_id, address, "complaint",
                                       detail=report.status, delivery_id=delivery.id)
        log.warning("delivery %s: complaint (%s): e-mail to the address stops",
                    delivery.id, report.status)
        return "complaint"
    if not report.hard:
        ledger.deliveries.report(delivery.id, report.status or "4.0.0", hard=False,
                                 diagnostic=report.diagnostic)
        return "soft"
    moved = ledger.deliveries.report(delivery.id, report.status or "5.0.0", hard=True,
                                     diagnostic=report.diagnostic)
    if address and invoice is not None:
        ledger.deliveries.suppress(invoice.operator_id, address, "bounce",
                                   detail=report.status, delivery_id=delivery.id)
    # Even for a second copy: a fallback an interrupted first copy did not make yet.
    _settle(ledger.deliveries.get(delivery.id), invoice, intake)
    if moved:
        log.warning("delivery %s: bounced (%s)", delivery.id, report.status)
    return "bounced" if moved else "duplicate"


def take_receipt(receipt: Receipt, intake: Intake) -> Taken:
    """Record an SMS gateway's delivery receipt; an undeliverable SMS bounces and falls
    back like an e-mail."""
    ledger = intake.ledger
    delivery = None
    for ident in (receipt.reference, receipt.message_id):
        if ident and delivery is None:
            delivery = ledger.deliveries.find("sms", ident)
    if delivery is None:
        return "unmatched"
    if receipt.status == "delivered":
        ledger.deliveries.report(delivery.id, "delivered", hard=False)
        return "delivered"
    moved = ledger.deliveries.report(delivery.id, receipt.status, hard=True,
                                     diagnostic=receipt.error)
    _settle(ledger.deliveries.get(delivery.id), ledger.invoices.get_by_id(delivery.invoice_id),
            intake)
    return "bounced" if moved else "duplicate"


def _record(invoice: Invoice, archive: Archive) -> BillingRecord:
    assert invoice.archive_key
    return parse_record(archive.get(invoice.archive_key.removesuffix(".pdf") + ".json"))


def _settle(failed: Delivery | None, invoice: Invoice | None, intake: Intake) -> None:
    if failed is None or invoice is None or failed.state != "bounced":
        return
    if intake.channels is None:
        fall_back(intake.ledger, failed, intake.policy)  # an SMS waits for send_waiting
        return
    settle(failed, invoice, _record(invoice, intake.archive), ledger=intake.ledger,
           channels=intake.channels)


def send_waiting(intake: Intake, *, limit: int = 1000) -> dict[str, int]:
    """Send the fallback SMS that wait ``pending`` (made where no gateway was at hand,
    or left by a transient failure); returns states and counts."""
    if intake.channels is None:
        return {}
    counts: dict[str, int] = {}
    for delivery in intake.ledger.deliveries.waiting_fallbacks(limit):
        invoice = intake.ledger.invoices.get_by_id(delivery.invoice_id)
        if invoice is None or not invoice.archive_key:
            continue
        state = send_fallback(delivery, invoice, _record(invoice, intake.archive),
                              ledger=intake.ledger, channels=intake.channels)
        counts[state] = counts.get(state, 0) + 1
    return counts
