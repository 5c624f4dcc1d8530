"""SMTP against a real aiosmtpd server on loopback: retries, permanent refusals,
outages, a connection lost after DATA, connection reuse, TLS and the URL.

No Python-level mocking of aiosmtplib: every test talks the protocol to a real server
(``tests/support/servers.py``: ``SmtpServer``, ``ScriptedHandler``)."""

from __future__ import annotations

import ssl
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from invoicer.billing.models import BillingRecord
from invoicer.delivery.email import (
    SendResult,
    SmtpMailer,
    mailer_from_url,
)
from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    SmtpPermanentError,
    SmtpTransientError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from invoicer.delivery.retry import Backoff, retry
from tests.support.mails import (
    BR,
    HOSTILE,
    HOSTILE_FLAT,
    PDF,
    build,
    display_names,
    parse,
    with_names,
)
from tests.support.servers import SmtpServer, closed_port

# --- SMTP: outcomes and retries --------------------------------------------------------


def test_451_three_times_then_delivered_once_with_growing_delays(smtp_server):
    smtp_server.handler.data_script[:] = ["451 4.3.0 Try again later"] * 3
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        result = retry(lambda: mailer.send(build()), backoff=Backoff(attempts=5, base=1),
                       sleep=sleeps.append)
    assert smtp_server.handler.data_attempts == 4
    assert len(smtp_server.handler.received) == 1
    assert result.reply.startswith("250 ")
    assert len(sleeps) == 3 and sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1]
    assert 0.5 <= sleeps[0] <= 1 and 2 <= sleeps[2] <= 4  # 1, 2, 4 s with equal jitter


def test_transient_smtp_error_keeps_code_and_text(smtp_server):
    smtp_server.handler.data_script[:] = ["452 4.3.1 Insufficient system storage"]
    with SmtpMailer.from_url(smtp_server.url) as mailer, pytest.raises(
            SmtpTransientError) as caught:
        mailer.send(build())
    assert (caught.value.code, caught.value.text) == (452, "4.3.1 Insufficient system storage")


def test_550_is_permanent_and_not_retried(smtp_server):
    smtp_server.handler.rcpt_script[:] = ["550 5.1.1 <maria@example.com>: no such user"]
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        with pytest.raises(SmtpPermanentError) as caught:
            retry(lambda: mailer.send(build()), sleep=sleeps.append)
        assert mailer.send(build()).reply.startswith("250")  # the connection is still good
    err = caught.value
    assert isinstance(err, PermanentDeliveryError) and not err.transient
    assert err.code == 550 and err.text == "5.1.1 <maria@example.com>: no such user"
    assert err.stage == "RCPT TO"
    assert sleeps == [] and smtp_server.handler.connections == 1
    assert len(smtp_server.handler.received) == 1


def test_server_down_then_up_delivers_once_after_recovery():
    server = SmtpServer()  # not started: connections are refused
    sleeps: list[float] = []

    def sleep(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 2:
            server.start()

    try:
        with SmtpMailer.from_url(server.url) as mailer:
            with pytest.raises(TransientDeliveryError):
                mailer.send(build())
            result = retry(lambda: mailer.send(build()), backoff=Backoff(attempts=4),
                           sleep=sleep)
    finally:
        server.stop()
    assert len(sleeps) == 2 and sleeps[0] <= sleeps[1]
    assert len(server.handler.received) == 1 and result.reply.startswith("250")


def test_connection_lost_after_data_is_unknown_and_not_resent(smtp_server):
    smtp_server.handler.data_script[:] = ["drop"]
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        with pytest.raises(UnknownDeliveryError) as caught:
            retry(lambda: mailer.send(build()), sleep=sleeps.append)
        assert not isinstance(caught.value, TransientDeliveryError | PermanentDeliveryError)
        assert sleeps == [] and smtp_server.handler.data_attempts == 1
        # The mailer itself is fine afterwards: a fresh connection for the next one.
        mailer.send(build(message_id="<next@mail.oi.example>"))
    assert smtp_server.handler.connections == 2


def test_no_reply_after_data_within_data_timeout_is_unknown(smtp_server):
    smtp_server.handler.data_script[:] = ["stall"]
    mailer = SmtpMailer.from_url(smtp_server.url + "&data_timeout=0.3")
    with mailer, pytest.raises(UnknownDeliveryError):
        retry(lambda: mailer.send(build()), sleep=lambda d: None)
    assert smtp_server.handler.data_attempts == 1


def test_close_with_a_message_in_flight_reports_it_unknown(smtp_server):
    smtp_server.handler.data_script[:] = ["stall"]
    mailer = SmtpMailer.from_url(smtp_server.url.replace("timeout=5", "timeout=0.3"))
    outcome: list[BaseException] = []

    def send() -> None:
        try:
            mailer.send(build())
        except DeliveryError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    # Until the message is in flight; a sender that gave up before DATA (a command timed
    # out on a very busy machine) ends the wait too, and the test fails, rather than hangs.
    deadline = time.monotonic() + 10
    while smtp_server.handler.data_attempts == 0 and sender.is_alive() \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert smtp_server.handler.data_attempts == 1, outcome
    mailer.close()  # waits 0.3 s for the reply, then gives up on the message
    sender.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], UnknownDeliveryError)


def test_connection_lost_before_the_payload_is_transient(smtp_server):
    smtp_server.handler.drop_at_data_command = 1
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        retry(lambda: mailer.send(build()), sleep=sleeps.append)
    assert len(sleeps) == 1 and smtp_server.handler.data_attempts == 1
    assert len(smtp_server.handler.received) == 1


def test_hand_off_is_called_once_right_before_the_data(smtp_server):
    seen: list[int] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        # Called after the server's 354 (DATA accepted), before any byte of the message.
        mailer.send(build(), before_data=lambda: seen.append(
            len(smtp_server.handler.received)))
        assert seen == [0] and len(smtp_server.handler.received) == 1

        # A hand-off that cannot be recorded stops the message: nothing delivered.
        def broken() -> None:
            raise OSError("ledger unreachable")

        with pytest.raises(TransientDeliveryError, match="recording the hand-off failed"):
            mailer.send(build(message_id="<second@mail.oi.example>"), before_data=broken)
        assert len(smtp_server.handler.received) == 1
        # The mailer recovers: the next message goes on a fresh connection.
        mailer.send(build(message_id="<third@mail.oi.example>"))
    assert len(smtp_server.handler.received) == 2


def test_received_message_is_intact_over_smtp(smtp_server):
    record = with_names(BR, customer=HOSTILE)
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        result = mailer.send(build(record))
    ((mail_from, rcpts, data),) = smtp_server.handler.received
    assert (mail_from, rcpts) == ("faturas@mail.oi.example", ["maria@example.com"])
    assert result.recipients == ("maria@example.com",)
    msg = parse(data)
    assert "Bcc" not in msg and "X-Evil" not in msg
    assert display_names(data, "To") == [(HOSTILE_FLAT, "maria@example.com")]
    assert next(msg.iter_attachments()).get_content() == PDF
    assert msg["Message-ID"] == result.message_id


# --- SMTP: connections -----------------------------------------------------------------


def _numbered(n: int, record: BillingRecord = BR) -> list[EmailMessage]:
    return [build(record, message_id=f"<m{i}@mail.oi.example>") for i in range(n)]


def test_one_connection_carries_many_messages(smtp_server):
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=1") as mailer:
        for message in _numbered(5):
            mailer.send(message)
        outcomes = mailer.send_many(_numbered(25))
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert [o.message_id for o in outcomes] == [f"<m{i}@mail.oi.example>" for i in range(25)]
    assert len(smtp_server.handler.received) == 30
    assert smtp_server.handler.connections == 1


def test_concurrency_bounds_the_connections(smtp_server):
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=3&max_messages=10") as mailer:
        outcomes = mailer.send_many(_numbered(60))
        opened = mailer.connections_opened
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(smtp_server.handler.received) == 60
    # Never more than 3 open at once; each retired after 10 messages, so at least 6,
    # plus at most 2 others part-used when the work ran out.
    assert smtp_server.handler.max_open == 3
    assert 6 <= smtp_server.handler.connections == opened <= 8


def test_send_many_reports_failures_in_place(smtp_server):
    smtp_server.handler.rcpt_script[:] = ["accept", "550 5.1.1 gone", "accept"]
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=1") as mailer:
        outcomes = mailer.send_many(_numbered(3))
    assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
    assert isinstance(outcomes[1], SmtpPermanentError) and outcomes[1].code == 550


def test_iter_send_yields_each_outcome_as_it_is_known(smtp_server):
    built: list[int] = []

    def messages():
        for i in range(12):
            built.append(i)
            yield build(message_id=f"<lazy{i}@mail.oi.example>")

    seen = []
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=2") as mailer:
        for message, outcome in mailer.iter_send(messages()):
            assert isinstance(outcome, SendResult)
            assert outcome.message_id == message["Message-ID"]
            # Built lazily: never more than the window (2 per connection) ahead.
            assert len(built) - len(seen) <= mailer.window
            seen.append(outcome.message_id)
    assert len(set(seen)) == 12


def test_a_connection_the_server_closed_while_idle_is_replaced():
    # aiosmtpd says "421 timeout" and hangs up after 0.3 s of silence.
    with SmtpServer(timeout=0.3) as server:
        with SmtpMailer.from_url(server.url) as mailer:
            mailer.send(build(message_id="<first@mail.oi.example>"))
            threading.Event().wait(0.6)
            result = mailer.send(build(message_id="<second@mail.oi.example>"))
        assert result.reply.startswith("250")
        assert len(server.handler.received) == 2 and server.handler.connections == 2


def test_refused_connection_is_transient():
    mailer = SmtpMailer("127.0.0.1", closed_port(), timeout=2, local_hostname="c.test")
    with mailer, pytest.raises(TransientDeliveryError):
        mailer.send(build())


def test_password_requires_tls_unless_told_otherwise():
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"inv@oi", b"p@ss:w/rd")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as server:
        base = f"smtp://inv%40oi:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}?timeout=5"
        # No STARTTLS on this server: a password is never sent in clear by default.
        with SmtpMailer.from_url(base) as mailer, pytest.raises(PermanentDeliveryError):
            mailer.send(build())
        with SmtpMailer.from_url(base + "&starttls=false") as mailer:
            assert mailer.send(build()).reply.startswith("250")
        wrong = base.replace("p%40ss", "nope") + "&starttls=false"
        with SmtpMailer.from_url(wrong) as mailer, pytest.raises(SmtpPermanentError) as err:
            mailer.send(build())
        assert err.value.code == 535
        assert len(server.handler.received) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _server_tls(tls_files) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def test_starttls_and_smtps_with_a_trusted_certificate(tls_files):
    cafile = tls_files[0]
    with SmtpServer(tls_context=_server_tls(tls_files), require_starttls=True) as server:
        url = f"smtp://127.0.0.1:{server.port}?timeout=5&starttls=true&cafile={cafile}"
        with SmtpMailer.from_url(url) as mailer:
            assert mailer.send(build()).reply.startswith("250")
        # Not trusted: refused for good, not retried forever.
        untrusted = f"smtp://127.0.0.1:{server.port}?timeout=5&starttls=true"
        with SmtpMailer.from_url(untrusted) as mailer, pytest.raises(PermanentDeliveryError):
            mailer.send(build())
        assert len(server.handler.received) == 1
    with SmtpServer(ssl_context=_server_tls(tls_files)) as server:
        with SmtpMailer.from_url(f"{server.url}&cafile={cafile}") as mailer:
            assert mailer.send(build()).reply.startswith("250")
        assert len(server.handler.received) == 1


# --- configuration -------------------------------------------------------------------


def test_mailer_urls():
    m = mailer_from_url("smtp://u%40x:s3cret@mail.example:587?starttls=true&concurrency=8"
                        "&timeout=10&max_messages=50")
    assert isinstance(m, SmtpMailer)
    assert (m.host, m.port, m.username, m.starttls, m.concurrency, m.timeout,
            m.max_messages) == ("mail.example", 587, "u@x", True, 8, 10.0, 50)
    assert "s3cret" not in repr(m)
    s = mailer_from_url("smtps://u:p@mail.example")
    assert (s.port, s.use_tls, s.starttls) == (465, True, None)
    assert mailer_from_url("smtp://relay.internal").starttls is None  # offered -> used
    assert mailer_from_url("smtp://u:p@relay.internal").starttls is True
    for bad in ("smtp://h?startls=true", "smtp://h?starttls=maybe", "smtps://h?starttls=true",
                "ftp://h", "smtp:///nohost", "file://"):
        with pytest.raises(ValueError):
            mailer_from_url(bad)
