"""The in-memory archive's own promise: it can be taken down, to test a caller's bad day."""

from __future__ import annotations

from datetime import date

import pytest

from invoicer.delivery.archive import Archive, MemoryArchive, invoice_key
from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError

KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")


def test_an_outage_fails_every_call_until_it_ends():
    archive = MemoryArchive()
    assert isinstance(archive, Archive)
    archive.put(KEY, b"%PDF-1.7 one")
    archive.outage = TransientDeliveryError("S3 503: SlowDown")
    for call in (lambda: archive.put(KEY, b"%PDF-1.7 one"), lambda: archive.get(KEY),
                 lambda: archive.exists(KEY), lambda: archive.stat(KEY),
                 lambda: archive.open_range(KEY), lambda: archive.list()):
        with pytest.raises(TransientDeliveryError, match="SlowDown"):
            call()
    archive.outage = PermanentDeliveryError("S3 403: AccessDenied")
    with pytest.raises(PermanentDeliveryError, match="AccessDenied"):
        archive.get(KEY)
    archive.outage = None
    assert archive.get(KEY) == b"%PDF-1.7 one" and archive.list() == [KEY]
