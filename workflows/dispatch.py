"""Deliver an archived invoice per the subscriber's preference, each channel once.

    electronic -> e-mail (+ SMS notice if asked)
    paper      -> print queue (+ SMS notice if asked)
    both       -> e-mail + print queue (+ SMS notice if asked)

An electronic subscriber without an e-mail address falls back to paper; the print
delivery records why. Every (invoice, channel) has one ledger row and a state machine
pending -> sending -> sent | failed_permanent | unknown. Only the caller whose
compare-and-set moves the row from ``pending`` to ``sending`` sends, so a second
dispatch (a retry, a redelivered task, fifty racing processes) is a no-op. A send
whose outcome is unknown (connection lost after the message was handed over) is
never repeated automatically: ``invoicer resend`` does that, deliberately. The ledger
marks the hand-over itself (``hand_off``) right before an e-mail's data goes out, so a
sender killed after it is ``unknown`` too, not sent twice by the reconciler.

A workflow over the ledger's delivery store and the e-mail and SMS transports; a paper
invoice's ``pending`` print delivery is the print queue (``workflows.printing``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from invoicer.billing.models import BillingRecord, DeliveryMode
from invoicer.delivery.bounces import Verp
from invoicer.delivery.email import build_invoice_message, message_id
from invoicer.delivery.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from invoicer.delivery.links import Keys, invoice_link
from invoicer.delivery.sms import render_sms
from invoicer.ledger import Delivery, Invoice, Ledger
from invoicer.workflows import owner
from invoicer.workflows.fallback import Policy, fall_back
from invoicer.workflows.preferences import apply_preference

log = logging.getLogger(__name__)

EMAIL, SMS, PRINT = "email", "sms", "print"


@dataclass(frozen=True, slots=True)
class Route:
    """The channels an invoice goes out on, and why paper if it was not asked for."""

    channels: tuple[str, ...]
    fallback: str | None = None


def route(record: BillingRecord) -> Route:
    """Which channels ``record`` is delivered on (the subscriber's preference)."""
    d = record.delivery
    email = d.mode in (DeliveryMode.electronic, DeliveryMode.both)
    paper = d.mode in (DeliveryMode.paper, DeliveryMode.both)
    fallback = None
    if email and not d.email:
        email, fallback = False, "electronic invoice without an e-mail address: sent on paper"
        paper = True
    channels = [c for c, wanted in ((EMAIL, email), (PRINT, paper),
                                    (SMS, d.sms_notice and bool(d.phone))) if wanted]
    return Route(tuple(channels), fallback)


@dataclass
class Channels:
    """What sending needs: the backends, the links' base URL and secret, and how
    hard to try before leaving a delivery queued for the next run."""

    mailer: object          # delivery.email.Mailer
    sms: object             # delivery.sms.SmsGateway
    public_url: str
    link_secret: Keys       # one secret, or a rotation's (the first signs)
    sender: str
    max_attachment: int = 10 * 1024 * 1024
    retry: Callable | None = None  # retry(call) -> result, transient errors only
    verp: Verp | None = None
    """Return paths per delivery (VERP); None: the envelope sender is the From."""
    fallback: Policy = field(default_factory=Policy)
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _open_until: dict[str, float] = field(default_factory=dict)

    def paused(self, channel: str) -> bool:
        """True while a channel's backend is known to be down (circuit open)."""
        return self.clock() < self._open_until.get(channel, 0.0)

    def trip(self, channel: str) -> None:
        # After a transient failure that outlasted the retries, stop knocking for a
        # while: each record would otherwise spend the whole backoff on a dead server.
        self._open_until[channel] = self.clock() + self.cooldown

    def reset(self, channel: str) -> None:
        self._open_until.pop(channel, None)


Fetch = Callable[[], bytes]


def dispatch(invoice: Invoice, record: BillingRecord, pdf: Fetch, *,
             ledger: Ledger, channels: Channels, xml: Fetch | None = None) -> dict[str, str]:
    """Deliver on every channel the route names; returns channel -> state.

    ``pdf`` fetches the archived bytes only if an e-mail attaches them; ``xml``, for an
    invoice whose e-invoice travels beside the PDF (XRechnung, Peppol, RO_CIUS), fetches
    the archived XML, which the e-mail attaches next to the PDF. Safe to call any number
    of times: channels already sent, failed or in flight are left alone.
    The subscriber's own choice may take precedence over the record's ``delivery.mode``
    (:func:`~invoicer.workflows.preferences.apply_preference`).
    """
    record = apply_preference(ledger, invoice, record)
    plan = route(record)
    states = {}
    if plan.fallback:
        # Recorded where ops look: an e-mail delivery that could not be, with the reason;
        # the print row beside it is the paper copy that replaces it.
        delivery = ledger.deliveries.ensure(invoice.id, EMAIL)
        if ledger.deliveries.transition(delivery.id, "pending", "sending"):
            ledger.deliveries.transition(delivery.id, "sending", "failed_permanent",
                                         error=plan.fallback)
        states[EMAIL] = "failed_permanent"
    for channel in plan.channels:
        to = record.delivery.email if channel == EMAIL else record.delivery.phone
        if channel != PRINT and not channels.paused(channel) and not (
                channel == EMAIL and to
                and ledger.deliveries.suppressed(invoice.operator_id, to)):
            # A first dispatch: the row is created already ``sending`` (one write, not
            # two); None when it exists, which the ordinary path below handles (as it
            # does a suppressed address).
            ident = identifier(channel, record, 0, channels)
            started = ledger.deliveries.start(invoice.id, channel, message_id=ident,
                                              owner=owner.me(), recipient=to)
            if started is not None:
                states[channel] = _attempt(channel, started, invoice, record, ident, pdf,
                                           xml, ledger, channels)
                continue
        delivery = ledger.deliveries.ensure(invoice.id, channel)
        if channel == PRINT:
            # ``pending`` is the print queue: print batches take paper invoices from it.
            states[channel] = delivery.state
            continue
        states[channel] = _send(channel, delivery, invoice, record, pdf, xml, ledger,
                                channels)
    if any(s in ("failed_permanent", "bounced") for s in states.values()):
        # Where the fallbacks stand (made now, or earlier); a fallback SMS left queued
        # (the gateway was down) goes now, as any queued channel does.
        for d in ledger.deliveries.for_invoice(invoice.id):
            if d.replaces_id is None or d.channel in states:
                continue
            states[d.channel] = d.state
            if d.channel == SMS and d.state in ("pending", "sending"):
                states[d.channel] = _send(SMS, d, invoice, record, pdf, xml, ledger,
                                          channels)
    return states


def _send(channel: str, delivery: Delivery, invoice: Invoice, record: BillingRecord,
          pdf: Fetch, xml: Fetch | None, ledger: Ledger, channels: Channels) -> str:
    # An automatic retry keeps its Message-ID / reference (the receiving side may have
    # seen the first try); a deliberate resend gets the next series (see resend()).
    if delivery.state == "sending":
        if not _take_back(delivery, ledger):
            return ledger.deliveries.get(delivery.id).state  # live, elsewhere, or unknown
        delivery = ledger.deliveries.get(delivery.id)
    if delivery.state == "pending" and channels.paused(channel):
        return "pending"  # the backend is down: left queued, nothing attempted
    ident = delivery.reference or delivery.message_id or _ident(channel, record, delivery,
                                                                 channels)
    to = record.delivery.email if channel == EMAIL else record.delivery.phone
    if not ledger.deliveries.transition(delivery.id, "pending", "sending", message_id=ident,
                                        owner=owner.me(), recipient=to, reference=ident):
        return ledger.deliveries.get(delivery.id).state  # another caller has it, or done
    if channel == EMAIL and to:
        why = ledger.deliveries.suppressed(invoice.operator_id, to)
        if why is not None:
            # A complaint or an earlier hard bounce: never mail that address again.
            ledger.deliveries.transition(
                delivery.id, "sending", "failed_permanent",
                error=f"e-mail to this address is suppressed ({why})")
            _fall_back(delivery.id, invoice, record, ledger, channels)
            return "failed_permanent"
    return _attempt(channel, delivery, invoice, record, ident, pdf, xml, ledger, channels)


def _ident(channel: str, record: BillingRecord, delivery: Delivery, channels: Channels) -> str:
    if delivery.replaces_id is not None and channel == SMS:
        # A fallback SMS is its own message, never the companion notice's retry.
        return f"{record.operator.id}:{record.invoice.number}:sms:f{delivery.id}"
    return identifier(channel, record, 0, channels)


def _take_back(delivery: Delivery, ledger: Ledger) -> bool:
    """A ``sending`` row whose sender was killed on this machine: finish it. Never handed
    over -> back to ``pending`` (this caller sends it, same identifier); handed over ->
    ``unknown``, never sent twice blindly. False if a live process (or one this machine
    cannot judge) holds it."""
    if delivery.owner is None or owner.alive(delivery.owner) is not False:
        return False
    if delivery.handed_off_at is not None:
        ledger.deliveries.transition(
            delivery.id, "sending", "unknown", owned_by=delivery.owner,
            error="the process sending it was killed after handing the message over: it "
                  "may have been delivered, so it is not sent again automatically")
        return False
    return ledger.deliveries.transition(
        delivery.id, "sending", "pending", owned_by=delivery.owner,
        error="the process sending it was killed before handing it over; sent again")


def _attempt(channel: str, delivery: Delivery, invoice: Invoice, record: BillingRecord,
             ident: str, pdf: Fetch, xml: Fetch | None, ledger: Ledger,
             channels: Channels) -> str:
    """Send a delivery this caller has moved to ``sending``; record how it ended."""
    def hand_off() -> None:
        # Right before the message data goes out: from here a crash leaves the outcome
        # unknown, and the reconciler must not send it again blindly.
        if not ledger.deliveries.hand_off(delivery.id):
            raise RuntimeError(f"delivery {delivery.id} is no longer this sender's")

    try:
        if channel == EMAIL:
            return_path = channels.verp.address(delivery.id) if channels.verp else None
            call = lambda: _email(record, ident, pdf, xml, channels,  # noqa: E731
                                  hand_off, return_path)
        else:
            call = lambda: _sms(record, ident, pdf, channels)  # noqa: E731
        result_id = channels.retry(call) if channels.retry else call()
    except UnknownDeliveryError as exc:
        log.error("%s of invoice %s: outcome unknown, not resent: %s", channel,
                  invoice.number, exc)
        ledger.deliveries.transition(delivery.id, "sending", "unknown", error=str(exc))
        return "unknown"
    except TransientDeliveryError as exc:
        # Back to the queue: the next run (or the reconciler) tries again, same ident.
        channels.trip(channel)
        ledger.deliveries.transition(delivery.id, "sending", "pending", error=str(exc))
        return "pending"
    except (PermanentDeliveryError, ValueError) as exc:
        # ValueError: arguments no backend could take (e.g. an unusable address); never
        # leave the row in ``sending``, where it would look like a send in flight.
        ledger.deliveries.transition(delivery.id, "sending", "failed_permanent",
                                     error=str(exc))
        _fall_back(delivery.id, invoice, record, ledger, channels)
        return "failed_permanent"
    channels.reset(channel)
    ledger.deliveries.transition(delivery.id, "sending", "sent", message_id=result_id or ident)
    return "sent"


def resend(invoice: Invoice, record: BillingRecord, channel: str, pdf: Fetch,
           *, ledger: Ledger, channels: Channels, xml: Fetch | None = None) -> str:
    """Send again, deliberately (ops): a new attempt series with its own Message-ID.

    Allowed from ``sent``, ``failed_permanent`` and ``unknown``; refused while another
    process is sending. Returns the new state.
    """
    if channel not in (EMAIL, SMS):
        raise ValueError(f"cannot resend on channel {channel!r}")
    record = apply_preference(ledger, invoice, record)
    delivery = ledger.deliveries.ensure(invoice.id, channel)
    ident = identifier(channel, record, delivery.attempts, channels)
    if not ledger.deliveries.transition(
            delivery.id, ("sent", "failed_permanent", "unknown", "pending", "bounced"),
            "sending", message_id=ident, owner=owner.me(), reference=ident,
            recipient=record.delivery.email if channel == EMAIL else record.delivery.phone):
        raise ValueError(f"{channel} delivery of {invoice.number} is being sent right now")
    return _attempt(channel, delivery, invoice, record, ident, pdf, xml, ledger, channels)


def identifier(channel: str, record: BillingRecord, series: int, channels: Channels) -> str:
    """Message-ID (e-mail) or gateway reference (SMS) of one attempt series."""
    if channel == EMAIL:
        domain = channels.sender.rsplit("@", 1)[-1].strip("> ")
        return message_id(record.operator.id, record.invoice.number, series, domain)
    return f"{record.operator.id}:{record.invoice.number}:sms:{series}"


def _link(record: BillingRecord, channels: Channels) -> str:
    return invoice_link(channels.public_url, record.operator.id, record.account.number,
                        record.invoice.number, channels.link_secret)


def _fall_back(delivery_id: int, invoice: Invoice, record: BillingRecord,
               ledger: Ledger, channels: Channels) -> None:
    """The policy's next step for a delivery that just failed for good."""
    failed = ledger.deliveries.get(delivery_id)
    if failed is not None:
        settle(failed, invoice, record, ledger=ledger, channels=channels)


def send_fallback(delivery: Delivery, invoice: Invoice, record: BillingRecord, *,
                  ledger: Ledger, channels: Channels) -> str:
    """Send a waiting fallback SMS (made when a bounce arrived); returns its state."""
    if delivery.channel != SMS or delivery.replaces_id is None:
        raise ValueError(f"delivery {delivery.id} is not a fallback SMS")
    return _send(SMS, delivery, invoice, record, lambda: b"", None, ledger, channels)


def settle(failed: Delivery, invoice: Invoice, record: BillingRecord, *, ledger: Ledger,
           channels: Channels) -> Delivery | None:
    """Fall back from ``failed`` (bounced, or failed for good) per the policy; returns
    the fallback made, if any. An SMS goes at once (its own failure falls back in
    turn); paper is a ``pending`` print delivery: the next print batch takes it."""
    made = fall_back(ledger, failed, channels.fallback)
    if made is not None and made.channel == SMS:
        _send(SMS, made, invoice, record, lambda: b"", None, ledger, channels)
    return made


def _email(record: BillingRecord, ident: str, pdf: Fetch, xml: Fetch | None,
           channels: Channels, before_data: Callable[[], None] | None = None,
           return_path: str | None = None) -> str:
    data = pdf() if record.delivery.attach_pdf else None
    link = None
    if data is None or len(data) > channels.max_attachment:
        data, link = None, _link(record, channels)
    message = build_invoice_message(record, pdf=data, link=link, sender=channels.sender,
                                    reply_to=None, message_id=ident,
                                    max_attachment=channels.max_attachment,
                                    xml=None if xml is None else xml())
    channels.mailer.send(message, before_data=before_data, return_path=return_path)
    return ident


def _sms(record: BillingRecord, ident: str, pdf: Fetch,
         channels: Channels) -> str:
    # No link in the SMS: a signed link is ~160 characters and would double or
    # quadruple the parts; the notice says amount, due date and how to pay, and the
    # e-mail or the paper invoice carries the document.
    text = render_sms(record)
    result = channels.sms.send(record.delivery.phone, text.text, reference=ident)
    return result.message_id
