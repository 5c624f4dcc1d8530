"""The error tree every transport raises: what is worth a retry, and what survives a
trip between processes."""

from __future__ import annotations

import hashlib
import pickle
from datetime import date

import pytest

from invoicer.delivery.archive import (
    invoice_key,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")
PDF = b"%PDF-1.7\n" + b"itemized invoice, page 1 of 1\n" * 200 + b"%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()
META = {"renderer-version": "1.0.0"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_delivery_errors_say_whether_to_retry():
    assert TransientDeliveryError("x").transient
    assert not PermanentDeliveryError("x").transient
    assert issubclass(ArchiveConflictError, PermanentDeliveryError)
    assert issubclass(ArchiveNotFoundError, PermanentDeliveryError)
    assert all(issubclass(c, DeliveryError) for c in (TransientDeliveryError,
                                                     PermanentDeliveryError))


def test_delivery_errors_survive_pickling():
    # The CLI's process pool and Celery ship exceptions between processes.
    for err in (ArchiveConflictError(KEY, SHA, sha(b"x")), ArchiveNotFoundError(KEY),
                TransientDeliveryError("503"), PermanentDeliveryError("403")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
        assert vars(copy) == vars(err)


@pytest.mark.parametrize(("status", "transient"), [
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
    (400, False), (403, False), (404, False), (412, False), (501, False), (505, False),
])
def test_http_status_classification(status, transient):
    from invoicer.delivery.errors import error_for_status, is_transient_status

    assert is_transient_status(status) is transient
    err = error_for_status(status, "boom")
    assert isinstance(err, TransientDeliveryError if transient else PermanentDeliveryError)
    assert str(status) in str(err)
