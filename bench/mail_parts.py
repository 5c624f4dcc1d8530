"""The e-mail and SMS delivery path's parts, each alone: CPU ms per call.

    python bench/mail_parts.py [--count 300] [--rounds 3]

Generated records (``billing.synthetic``, ~20 CDRs) are parsed and rendered to PDFs
first (outside the timer). Then, for each part, the loop over the records is timed
``--rounds`` times with ``time.process_time`` (user + sys) and the median printed:
``render_invoice_email``; ``build_invoice_message`` (the PDF attached, or a link when the
subscriber has no attachment); ``FileMailer.send`` into a new outbox folder (its user
and sys time apart as well: sys is mostly the two fsyncs); ``render_sms``; and
``FileSmsOutbox.send`` into a new folder. No ledger, no preference look-up: for the
whole delivery step as a bill run runs it, see ``bench/delivery.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LINK = "https://invoices.example/d/tok"
SENDER = ("Billing", "billing@mail.example")


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _rounds(rounds: int, count: int, loop: Callable[[], None]) -> str:
    """Median ms per call of ``loop`` (``count`` calls), total and user/sys."""
    total, user, system = [], [], []
    for _ in range(rounds):
        start, (u0, s0) = time.process_time(), _cpu()
        loop()
        (u1, s1), end = _cpu(), time.process_time()
        total.append((end - start) * 1000 / count)
        user.append((u1 - u0) * 1000 / count)
        system.append((s1 - s0) * 1000 / count)
    return (f"{statistics.median(total):6.3f} ms  (user {statistics.median(user):.3f}, "
            f"sys {statistics.median(system):.3f}; rounds: "
            + " ".join(f"{t:.3f}" for t in total) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from invoicer.billing import parse_record
    from invoicer.billing.synthetic import generate
    from invoicer.delivery.email import FileMailer, build_invoice_message, message_id
    from invoicer.delivery.email.render import render_invoice_email
    from invoicer.delivery.sms import render_sms
    from invoicer.delivery.sms.outbox import FileSmsOutbox
    from invoicer.renderer import render

    records = [parse_record(json.dumps(r).encode()) for r in generate(args.count, 20, 11)]
    emailed = [(r, render(r)) for r in records if r.delivery.email]
    texted = [(r.delivery.phone or "+5511987654321", f"{r.operator.id}:{r.invoice.number}:sms:0")
              for r in records]

    def build(record, pdf):
        attach = record.delivery.attach_pdf
        return build_invoice_message(
            record, pdf=pdf if attach else None, link=None if attach else LINK,
            sender=SENDER, reply_to=None,
            message_id=message_id(record.operator.id, record.invoice.number, 0,
                                  "mail.example"))

    for record, pdf in emailed[:5]:  # templates compiled, caches warm
        build(record, pdf)
        render_sms(record)
    messages = [build(r, pdf) for r, pdf in emailed]
    sms = [(to, render_sms(r).text, ref) for r, (to, ref) in zip(records, texted, strict=True)]
    folders: list[str] = []

    def new_folder() -> str:
        folders.append(tempfile.mkdtemp(prefix="invoicer-bench-parts-"))
        return folders[-1]

    def send_mail() -> None:
        mailer = FileMailer(new_folder())
        for message in messages:
            mailer.send(message)

    def send_sms() -> None:
        outbox = FileSmsOutbox(new_folder())
        for to, text, ref in sms:
            outbox.send(to, text, reference=ref)

    n, rounds = len(emailed), args.rounds
    print(f"{len(records)} records, {n} with e-mail; median of {rounds} rounds, CPU per call")
    try:
        print("render_invoice_email   ",
              _rounds(rounds, n, lambda: [render_invoice_email(r) for r, _ in emailed]))
        print("build_invoice_message  ",
              _rounds(rounds, n, lambda: [build(r, pdf) for r, pdf in emailed]))
        print("FileMailer.send        ", _rounds(rounds, n, send_mail))
        print("render_sms             ",
              _rounds(rounds, len(records), lambda: [render_sms(r) for r in records]))
        print("FileSmsOutbox.send     ", _rounds(rounds, len(sms), send_sms))
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
