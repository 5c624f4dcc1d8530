"""The exact bytes of invoice e-mails, pinned: every sample record, with and without
the PDF, with hostile names, another sender, a Reply-To, List-Unsubscribe and an XML.

Speed work on templating, MIME building or serialization must not change one byte a
subscriber receives. The Date is fixed and the boundaries made deterministic here; the
SHA-256 of each message is compared with ``pinned_bytes.json``. A deliberate change of
wording or structure rewrites the file with ``python -m tests.delivery.email.test_pinned_bytes``
(review the diff of the e-mails first).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest

from invoicer.delivery.email import render_invoice_email, serialize
from tests.support.mails import HOSTILE, SAMPLE, build, with_names

PINNED = Path(__file__).with_name("pinned_bytes.json")
DATE = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice>\xc3\xa9</Invoice>\n'
LINK = "https://invoices.example/d/tok?x=1&y=2"


def _variants():
    """(name, record, build overrides) of every pinned message."""
    for number, record in sorted(SAMPLE.items()):
        if not record.delivery.email:
            continue
        yield f"{number}/attached", with_names(record, attach_pdf=True), {}
        yield f"{number}/link", with_names(record, attach_pdf=False), {"link": LINK}
    base = SAMPLE["OI-2026-11-0000123"]
    fa = SAMPLE["AB-2026-11-0000721"]
    yield "hostile-names", with_names(base, customer=HOSTILE, operator=HOSTILE), {}
    yield "long-ascii-name", with_names(base, customer="Maria " * 20), {}
    yield "fa-hostile", with_names(fa, customer=HOSTILE), {"link": LINK}
    yield "sender-pair", base, {"sender": ("Faturas Oi Møvel", "faturas@mail.oi.example"),
                                "reply_to": "suporte@oi.example"}
    yield "sender-bare", base, {"sender": "faturas@mail.oi.example",
                                "reply_to": ("Atendimento \"Oi\" <x>", "a.b+c@oi.example")}
    yield "idn-recipient", with_names(base, email="ana@exêmplo.com.br"), {}
    yield "unsubscribe", base, {"list_unsubscribe": ["mailto:u@oi.example",
                                                     "https://oi.example/u?t=1"]}
    yield "xml", base, {"xml": XML}
    yield "xml-link", with_names(base, attach_pdf=False), {"xml": XML, "link": LINK}


def _digests() -> dict[str, str]:
    counter = itertools.count()

    def token_hex(n: int = 16) -> str:
        return f"{next(counter):0{2 * n}x}"

    original = secrets.token_hex
    secrets.token_hex = token_hex
    try:
        out = {}
        for name, record, overrides in _variants():
            data = serialize(build(record, date=DATE, **overrides))
            out[name] = hashlib.sha256(data).hexdigest()
            mail = render_invoice_email(record, link=overrides.get("link"),
                                        unsubscribe="https://oi.example/u?t=1")
            words = "\0".join((mail.subject, mail.text, mail.html, mail.locale))
            out[f"{name}/render"] = hashlib.sha256(words.encode()).hexdigest()
        return out
    finally:
        secrets.token_hex = original


def test_the_bytes_of_every_pinned_message_are_unchanged():
    expected = json.loads(PINNED.read_text())
    got = _digests()
    changed = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    assert not changed, f"these e-mails changed: {changed}"


if __name__ == "__main__":
    PINNED.write_text(json.dumps(_digests(), indent=1, sort_keys=True) + "\n")
    pytest.main([__file__, "-q"])
