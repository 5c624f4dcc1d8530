"""Delivery alone, in one process: CPU per invoice and where it goes.

    python bench/delivery.py [--count 300]

Generated records (``billing.synthetic``, ~20 CDRs) are rendered, archived and
recorded first (file archive, SQLite ledger, outside the timer); then each invoice is
dispatched as a bill run does (e-mail with the PDF or a link, written to the file
outbox with fsync; SMS notice to the file outbox; ledger states; the subscriber's
preference look-up). Prints CPU ms per invoice (``time.process_time``) and the share of
its parts. No process start or imports in the figure, unlike ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed(totals: dict[str, float], owner, name: str, label: str) -> None:
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] += time.process_time() - start

    setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="invoicer-bench-delivery-")
    os.environ.update({
        "INVOICER_DB_URL": f"sqlite:///{tmp}/ledger.db",
        "INVOICER_ARCHIVE_URL": f"file://{tmp}/archive",
        "INVOICER_MAIL_URL": f"file://{tmp}/outbox", "INVOICER_SMS_URL": f"file://{tmp}/sms",
        "INVOICER_LINK_SECRET": "bench-link-secret-0123456789abcdef0123"})

    from invoicer import backends
    from invoicer.billing import parse_record
    from invoicer.billing.synthetic import generate
    from invoicer.delivery.email import outbox
    from invoicer.ledger.deliveries import DeliveryStore
    from invoicer.pipeline import process_record
    from invoicer.renderer import render
    from invoicer.settings import Settings
    from invoicer.workflows import dispatch as dispatching

    settings = Settings()
    services = backends.services(settings, deliver=False)
    services.ledger.migrate()
    run_id = services.ledger.runs.start("bench-delivery")
    invoices = []
    for line, record in enumerate(generate(args.count, 20, 11), start=1):
        raw = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        process_record(raw, line=line, run_id=run_id, services=services)
        parsed = parse_record(raw, line=line)
        invoice = services.ledger.invoices.get(parsed.operator.id, parsed.invoice.number)
        invoices.append((invoice, parsed, render(parsed)))
    channels = backends.channels(settings)

    totals: dict[str, float] = defaultdict(float)
    _timed(totals, dispatching, "build_invoice_message", "e-mail: build")
    _timed(totals, type(channels.mailer), "send", "e-mail: outbox write")
    _timed(totals, outbox, "serialize", "  of which serialize")
    _timed(totals, dispatching, "render_sms", "SMS: text")
    _timed(totals, type(channels.sms), "send", "SMS: outbox write")
    _timed(totals, dispatching, "apply_preference", "preference look-up")
    for name in ("start", "ensure", "transition", "hand_off", "get"):
        _timed(totals, DeliveryStore, name, "ledger states")

    def deliver(items) -> None:
        for invoice, record, pdf in items:
            dispatching.dispatch(invoice, record, lambda pdf=pdf: pdf,
                                 ledger=services.ledger, channels=channels)

    warm = min(5, len(invoices))
    deliver(invoices[:warm])
    totals.clear()
    timed = invoices[warm:]
    start = time.process_time()
    deliver(timed)
    cpu = (time.process_time() - start) * 1000 / max(1, len(timed))
    emails = sum(bool(r.delivery.email) for _, r, _ in timed)
    sms = sum(bool(r.delivery.sms_notice and r.delivery.phone) for _, r, _ in timed)
    print(f"{len(timed)} invoices ({emails} with e-mail, {sms} with an SMS notice): "
          f"delivery {cpu:.2f} ms CPU per invoice (target <= 5 ms)")
    for label, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:24} {seconds * 1000 / max(1, len(timed)):6.2f} ms")
    services.close()
    channels.mailer.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
