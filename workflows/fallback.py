"""Fallback, per operator policy: an invoice that could not reach its subscriber one
way goes out the next.

    e-mail bounced or failed for good -> SMS notice (amount, due date, payment line)
                                       -> paper (the next print batch)

The policy is an ordered list of channels per operator (settings: ``INVOICER_FALLBACK``,
``INVOICER_FALLBACK_OPERATORS``). When a delivery that carries the invoice (the e-mail,
or a fallback itself) ends ``bounced`` or ``failed_permanent``, :func:`fall_back` makes
the next step a new delivery row that names the one it replaces. The ledger makes that
exactly once (one replacement per delivery, one delivery per channel per invoice),
however many copies of a bounce arrive at once. A step is skipped when it cannot
reach the subscriber (no phone for SMS) or its channel already failed for this
invoice; when the invoice already goes out on a channel the policy names (a paper copy
queued for a subscriber who asked for both, an SMS notice with the payment line sent)
the subscriber is reached and nothing is added. An SMS notice that went *with* an
e-mail is a companion, not the invoice: its failure changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from invoicer.ledger import Delivery, Ledger

__all__ = ["DEFAULT_STEPS", "Policy", "fall_back"]

log = logging.getLogger(__name__)

#: What a failed e-mail becomes when the operator's policy says nothing else.
DEFAULT_STEPS: tuple[str, ...] = ("sms", "print")
_STEPS = frozenset({"sms", "print"})
_DEAD = frozenset({"failed_permanent", "bounced"})


def _steps(text: str) -> tuple[str, ...]:
    steps = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if steps == ("none",):
        return ()
    bad = [s for s in steps if s not in _STEPS]
    if bad or len(set(steps)) != len(steps):
        raise ValueError(f"a fallback policy is 'sms,print', 'print', 'sms' or 'none', "
                         f"each channel once: {text!r}")
    return steps


@dataclass(frozen=True)
class Policy:
    """The channels a failed e-mail falls back to, in order, per operator."""

    default: tuple[str, ...] = DEFAULT_STEPS
    operators: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, default: str = "sms,print",
              operators: Mapping[str, str] | None = None) -> Policy:
        """From settings text: ``"sms,print"``, ``"print"``, ``"none"``..."""
        return cls(_steps(default), {op: _steps(v) for op, v in (operators or {}).items()})

    def steps(self, operator: str) -> tuple[str, ...]:
        """The chain after e-mail for ``operator``."""
        return self.operators.get(operator, self.default)


def fall_back(ledger: Ledger, failed: Delivery, policy: Policy) -> Delivery | None:
    """The fallback of ``failed`` (bounced or failed for good), made once; None when
    there is none to make (another caller made it, the chain is over, the subscriber
    is already reached, or ``failed`` is an SMS companion of an e-mail)."""
    if failed.state not in _DEAD:
        return None
    if failed.channel != "email" and failed.replaces_id is None:
        return None  # a companion SMS notice, or a print row: not the invoice's way
    existing = ledger.deliveries.replacement(failed.id)
    if existing is not None:
        return None
    invoice = ledger.invoices.get_by_id(failed.invoice_id)
    if invoice is None:
        return None
    chain = policy.steps(invoice.operator_id)
    start = chain.index(failed.channel) + 1 if failed.channel in chain else 0
    others = {d.channel: d for d in ledger.deliveries.for_invoice(invoice.id)}
    why = (f"{'e-mail' if failed.channel == 'email' else failed.channel} "
           f"{'bounced' if failed.state == 'bounced' else 'failed'}"
           + (f" ({failed.report_status})" if failed.report_status else "")
           + (f": {failed.last_error}" if failed.last_error else ""))[:500]
    if any(others[c].state not in _DEAD for c in chain[start:] if c in others):
        return None  # it already goes out a way the policy names: the subscriber is reached
    for channel in chain[start:]:
        if channel == "sms" and not invoice.phone:
            continue
        if channel in others:
            continue  # that way failed too: try the next
        made = ledger.deliveries.fall_back(failed, channel, why)
        if made is not None:
            log.info("delivery %s of invoice %s: fell back to %s (delivery %s)",
                     failed.id, invoice.number, channel, made.id)
        return made
    log.warning("delivery %s of invoice %s: %s, and no fallback is left", failed.id,
                invoice.number, failed.state)
    return None
