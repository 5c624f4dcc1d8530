"""The mailer contract, run over every backend: the file outbox, SMTP to a real aiosmtpd
on loopback, and the in-memory fake.

Each backend comes with a way to read what its far side holds (the outbox folder, what
the SMTP server accepted, the fake's list), so the promises are checked on the bytes
that arrived, not on what the mailer says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from invoicer.delivery.email import (
    FileMailer,
    Mailer,
    MemoryMailer,
    SendResult,
    SmtpMailer,
    envelope,
    serialize,
)
from tests.support.mails import build, parse
from tests.support.servers import SmtpServer


@dataclass
class Backend:
    """A mailer under contract and what its far side received, as (envelope sender or
    None where the peer keeps none, recipients or None, bytes) in arrival order."""

    name: str
    mailer: Mailer
    received: Callable[[], list[tuple[str | None, list[str] | None, bytes]]]
    connections: Callable[[], int]


@pytest.fixture(params=["file", "smtp", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        mailer = FileMailer(tmp_path / "outbox")

        def files() -> list[tuple[str | None, list[str] | None, bytes]]:
            folder = tmp_path / "outbox"
            paths = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns) if (
                folder.exists()) else []
            return [(None, None, p.read_bytes()) for p in paths]

        yield Backend("file", mailer, files, lambda: 0)
    elif request.param == "memory":
        memory = MemoryMailer()
        yield Backend("memory", memory,
                      lambda: [(m.sender, list(m.recipients), m.data) for m in memory.sent],
                      lambda: 0)
    else:
        server: SmtpServer = request.getfixturevalue("smtp_server")
        with SmtpMailer.from_url(server.url) as smtp:
            yield Backend("smtp", smtp,
                          lambda: [(f, list(r), d) for f, r, d in server.handler.received],
                          lambda: server.handler.connections)


def _numbered(n: int, tag: str = "m"):
    return [build(message_id=f"<{tag}{i}@mail.oi.example>") for i in range(n)]


def test_backends_are_mailers(backend):
    assert isinstance(backend.mailer, Mailer)


def test_the_far_side_holds_exactly_the_wire_bytes(backend):
    message = build()
    result = backend.mailer.send(message)
    assert isinstance(result, SendResult) and result.created
    assert result.message_id == message["Message-ID"]
    assert result.recipients == ("maria@example.com",)
    ((sender, recipients, data),) = backend.received()
    assert data == serialize(message)
    assert sender in (None, "faturas@mail.oi.example")
    assert recipients in (None, ["maria@example.com"])


def test_blind_copies_travel_in_the_envelope_only(backend):
    message = build()
    message["Cc"] = "copy@example.com"
    message["Bcc"] = "audit@oi.example"
    result = backend.mailer.send(message)
    assert result.recipients == ("maria@example.com", "copy@example.com", "audit@oi.example")
    ((_, recipients, data),) = backend.received()
    assert recipients in (None, list(result.recipients))
    assert b"audit@oi.example" not in data and "Bcc" not in parse(data)
    assert parse(data)["Cc"] == "copy@example.com"


def test_a_message_without_message_id_or_recipient_is_refused_before_any_io(backend):
    no_id = build()
    del no_id["Message-ID"]
    no_rcpt = build()
    del no_rcpt["To"]
    for message in (no_id, no_rcpt):
        with pytest.raises(ValueError):
            backend.mailer.send(message)
    assert backend.received() == [] and backend.connections() == 0


def test_send_many_returns_one_outcome_per_message_in_order(backend):
    messages = _numbered(7)
    outcomes = backend.mailer.send_many(messages)
    assert [o.message_id for o in outcomes] == [m["Message-ID"] for m in messages]
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert sorted(d for _, _, d in backend.received()) == sorted(map(serialize, messages))


def test_iter_send_yields_every_message_with_its_outcome(backend):
    messages = _numbered(5, "it")
    seen = {m["Message-ID"]: o for m, o in backend.mailer.iter_send(iter(messages))}
    assert set(seen) == {m["Message-ID"] for m in messages}
    assert all(o.message_id == mid for mid, o in seen.items())


def test_a_closed_mailer_can_be_used_again(backend):
    backend.mailer.send(build(message_id="<before@mail.oi.example>"))
    backend.mailer.close()
    backend.mailer.send(build(message_id="<after@mail.oi.example>"))
    assert len(backend.received()) == 2


def test_before_data_is_called_at_most_once_and_before_the_data(backend):
    arrived: list[int] = []
    message = build()
    backend.mailer.send(message, before_data=lambda: arrived.append(len(backend.received())))
    # The outbox has no such point (writing one Message-ID twice is a no-op) and does not
    # call it; the others call it once, when nothing of the message has arrived yet.
    assert arrived == ([] if backend.name == "file" else [0])
    assert [d for _, _, d in backend.received()] == [serialize(message)]
    assert envelope(message) == ("faturas@mail.oi.example", ["maria@example.com"])
