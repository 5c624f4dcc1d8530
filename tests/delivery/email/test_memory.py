"""The in-memory mailer's own promises: every send is a delivery (as on the wire), and
scripted failures land where SMTP's would, around the hand-off."""

from __future__ import annotations

import pytest

from invoicer.delivery.email import MemoryMailer
from invoicer.delivery.errors import (
    SmtpPermanentError,
    SmtpTransientError,
    UnknownDeliveryError,
)
from tests.support.mails import build


def test_the_same_message_id_twice_is_two_deliveries():
    mailer = MemoryMailer()
    first, again = mailer.send(build()), mailer.send(build())
    assert first.message_id == again.message_id and len(mailer.sent) == 2
    assert first.reply != again.reply  # "queued as M1", "queued as M2"


def test_scripted_failures_before_and_after_the_hand_off():
    mailer = MemoryMailer()
    mailer.fail_next(SmtpTransientError(451, "4.3.0 later", "RCPT TO"),
                     SmtpPermanentError(550, "5.1.1 gone", "RCPT TO"),
                     UnknownDeliveryError("connection lost after the data"))
    handed_off: list[str] = []

    def send():
        return mailer.send(build(), before_data=lambda: handed_off.append("x"))

    with pytest.raises(SmtpTransientError):
        send()
    with pytest.raises(SmtpPermanentError):
        send()
    assert handed_off == []  # refused before the data: the hand-off never came
    with pytest.raises(UnknownDeliveryError):
        send()
    assert handed_off == ["x"] and mailer.sent == []
    assert send().reply.startswith("250") and handed_off == ["x", "x"]
    assert len(mailer.sent) == 1
