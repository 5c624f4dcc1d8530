"""Where a bill run's CPU goes beyond rendering: a timer around each step, one process.

    python bench/steps.py [--count 400] [--rounds 3] [--cdrs 20]

Renders the records alone (parse + render, as ``bench/run.py``'s render-only phase),
then runs them through ``invoicer run``'s own code in this process (``workers=1``: no
pool, the embedded defaults: file archive, SQLite ledger, file outboxes) into a fresh
folder, ``--rounds`` times in turn. Each step's CPU time (user + system, this process:
``time.process_time``) is summed per record; steps nest (``_deliver`` holds the e-mail
build and the delivery rows), so the lines do not add up to the run. The wrappers cost
about a microsecond a call. Figures move with the machine's load: compare within a run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (module or class, attribute) of each step timed, by the name printed.
STEPS = {
    "parse": ("invoicer.pipeline", "parse_record"),
    "content hash": ("invoicer.pipeline", "content_sha256"),
    "claim": ("invoicer.ledger.invoices:InvoiceStore", "claim"),
    "render + canonical JSON": ("invoicer.pipeline", "_render"),
    "archive puts": ("invoicer.delivery.archive.file:FileArchive", "put"),
    "mark archived": ("invoicer.ledger.invoices:InvoiceStore", "mark_archived"),
    "delivery (all of it)": ("invoicer.pipeline", "_deliver"),
    "  preference": ("invoicer.workflows.dispatch", "apply_preference"),
    "  e-mail build": ("invoicer.workflows.dispatch", "build_invoice_message"),
    "  e-mail outbox": ("invoicer.delivery.email.outbox:FileMailer", "send"),
    "  SMS text": ("invoicer.workflows.dispatch", "render_sms"),
    "  delivery row created": ("invoicer.ledger.deliveries:DeliveryStore", "start"),
    "  delivery row moved": ("invoicer.ledger.deliveries:DeliveryStore", "transition"),
    "  print row": ("invoicer.ledger.deliveries:DeliveryStore", "ensure"),
    "  suppression read": ("invoicer.ledger.deliveries:DeliveryStore", "suppressed"),
}


def _owner(spec: str) -> object:
    import importlib

    module, _, cls = spec.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


def _timed(spent: collections.Counter[str]) -> None:
    """Wrap every step of :data:`STEPS` so that its CPU time adds up in ``spent``."""
    clock = time.process_time
    for label, (spec, name) in STEPS.items():
        owner = _owner(spec)
        inner = getattr(owner, name)

        def timed(*args, _inner=inner, _label=label, **kwargs):
            start = clock()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[_label] += clock() - start

        setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cdrs", type=int, default=20, help="calls per record")
    args = parser.parse_args()

    from invoicer.billing import parse_record
    from invoicer.billing.synthetic import generate
    from invoicer.renderer import render
    from invoicer.runner import run_file
    from invoicer.settings import Settings

    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":"))
             for r in generate(args.count, args.cdrs, 11)]
    raws = [line.encode() for line in lines]
    spent: collections.Counter[str] = collections.Counter()
    _timed(spent)
    per = 1000 / args.count

    def render_only() -> float:
        start = time.process_time()
        for raw in raws:
            render(parse_record(raw))
        return (time.process_time() - start) * per

    render_only()  # fonts read, caches warm: both phases start alike
    alone, runs, rounds = [], [], []
    for _ in range(args.rounds):
        alone.append(render_only())
        tmp = Path(tempfile.mkdtemp(prefix="steps-"))
        (tmp / "run.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.environ.update(INVOICER_DB_URL=f"sqlite:///{tmp}/ledger.db",
                          INVOICER_ARCHIVE_URL=f"file://{tmp}/archive",
                          INVOICER_MAIL_URL=f"file://{tmp}/outbox",
                          INVOICER_SMS_URL=f"file://{tmp}/sms",
                          INVOICER_LINK_SECRET="bench-link-secret-0123456789abcdef0123")
        spent.clear()
        start = time.process_time()
        run_file(tmp / "run.jsonl", Settings(), workers=1, deliver=True, own_process=True)
        runs.append((time.process_time() - start) * per)
        rounds.append(dict(spent))
    print(f"{args.count} records of {args.cdrs} calls, CPU ms per record, {args.rounds} rounds")
    print(f"{'render only (parse + render)':30}" + "".join(f"{x:8.2f}" for x in alone))
    print(f"{'whole run, one process':30}" + "".join(f"{x:8.2f}" for x in runs))
    print(f"{'  whole / render only':30}" + "".join(
        f"{r / a:8.3f}" for r, a in zip(runs, alone, strict=True))
        + f"   median {statistics.median(runs) / statistics.median(alone):.3f}")
    for label in STEPS:
        print(f"{label:30}" + "".join(f"{r.get(label, 0) * per:8.3f}" for r in rounds))


if __name__ == "__main__":
    main()
