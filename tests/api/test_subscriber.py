"""Subscribers over a real uvicorn: history, signed documents, second copies, SMS codes.

Refusals must say nothing beyond the status and leak no byte of another account:
another account's number, ``../``, encoded separators, a flipped bit, an expired link,
another operator's. Codes: single use, 15 minutes, five wrong tries, rate limits, and
the same answer for subscribers and strangers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pikepdf
import pytest
import sqlalchemy as sa

from invoicer.delivery import links
from invoicer.ledger.schema import sms_codes
from tests.api.conftest import SECRET, sms_code
from tests.api.subscriber_client import API, BEFORE_DUE, bearer, link_token, session
from tests.api.world import MAIN, NEIGHBOUR, OTHER_OPERATOR, STRANGER

#: On SQLite the subscriber's reads run inline; on PostgreSQL they are awaited on the
#: event loop (ledger.aio): the same answers, refusals included, on both.
BOTH_DATABASES = pytest.mark.parametrize("sub", ["sqlite", "postgresql"], indirect=True)
#: ... and with the archive in S3 (the async downloads read it in the thread pool).
WITH_S3 = pytest.mark.parametrize("sub", ["sqlite", "postgresql", "postgresql-s3"],
                                  indirect=True)


def archived(sub, operator: str, number: str) -> bytes:
    invoice = sub.ledger.invoices.get(operator, number)
    return sub.archive.get(invoice.archive_key)


# ---------------------------------------------------------------------------- the flow


@WITH_S3
def test_code_session_history_and_document(sub):
    sub.clock.now = BEFORE_DUE  # the latest invoice is not overdue yet
    # PostgreSQL: the history and the download are awaited reads (ledger.aio).
    assert sub.ledger.db.reads_async is (sub.ledger.dialect == "postgresql")
    token = session(sub)
    got = sub.http.get(f"{API}/invoices", headers=bearer(token))
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["operator"], body["account"]) == MAIN[:2]
    numbers = [i["number"] for i in body["invoices"]]
    mine = [i.number for i in sub.issued if i.account == MAIN[1]]
    assert numbers == list(reversed(mine))[:13] and len(mine) == 14
    latest = body["latest"]
    assert latest == body["invoices"][0]
    assert latest["number"] == "OI-2026-11-0000123"
    assert (latest["amount"], latest["currency"], latest["payment_status"]) == (
        "104.75", "BRL", "unpaid")
    assert latest["period"] == {"start": "2026-10-01", "end": "2026-10-28"}
    assert (latest["issue_date"], latest["due_date"]) == ("2026-11-05", "2026-11-20")
    pdf = sub.http.get(latest["document"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == archived(sub, "oi", latest["number"])
    assert pdf.headers["etag"].strip('"') == hashlib.sha256(pdf.content).hexdigest()
    # A session's links live as long as the session: 15 minutes, not 7 days.
    assert latest["links_expire_at"] == got.json()["invoices"][-1]["links_expire_at"]
    claims = links.verify(latest["document"].split("/")[-1].removesuffix(".pdf"), SECRET,
                          now=sub.clock().timestamp())
    assert claims.expires - sub.clock().timestamp() <= 15 * 60 + 1
    # Resuming: the last 100 bytes only.
    tail = sub.http.get(latest["document"], headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == pdf.content[-100:]


@BOTH_DATABASES
def test_an_email_link_opens_its_invoice_and_the_accounts_history(sub):
    number = "OI-2026-09-0000123"
    token = link_token("oi", MAIN[1], number, ttl=7 * 24 * 3600, now=sub.clock().timestamp())
    got = sub.http.get(f"/invoices/{token}.pdf")
    assert got.status_code == 200 and got.content == archived(sub, "oi", number)
    history = sub.http.get(f"{API}/invoices", headers=bearer(token))
    assert history.status_code == 200 and history.json()["account"] == MAIN[1]


def test_a_stranger_gets_the_same_answer_and_no_sms(sub):
    answers = [sub.http.post(f"{API}/sms-code", json={"phone": p}) for p in (MAIN[2], STRANGER)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].content == answers[1].content
    assert {k: v for k, v in answers[0].headers.items() if k not in ("date",)} == \
           {k: v for k, v in answers[1].headers.items() if k not in ("date",)}
    sms_code(sub.outbox, MAIN[2])
    sub.app.state.deferred.join()  # the stranger's lookup is done too
    assert [m.to for m in sub.outbox.messages()] == [MAIN[2]]
    # Timing: the lookup and the SMS happen after the answer; both are the same work.
    def timed(phone: str) -> float:
        sub.app.state.deferred.join()  # the previous request's lookup and SMS are done
        start = time.perf_counter()
        got = sub.http.post(f"{API}/sms-code", json={"phone": phone})
        took = time.perf_counter() - start
        assert got.status_code == 202  # a 429 would be quicker: not what is timed here
        return took
    # Pairs timed back to back (a subscriber, a stranger; in turn which first), so that
    # a busy machine (CI runs other jobs beside the suite) slows both of a pair alike;
    # the median difference of 12 pairs. Four samples a side, compared by their second
    # smallest, failed about one run in a hundred under load (two or three busy
    # processes on two cores) with no difference in the work done.
    pairs = []
    for i in range(12):
        if i % 4 == 0:
            sub.clock.advance(15 * 60)  # a fresh window: 3 codes per number in each
        phones = (NEIGHBOUR[2] if i % 2 else OTHER_OPERATOR[2], f"+55219000010{i:02d}")
        first, second = (timed(p) for p in (phones if i % 2 else phones[::-1]))
        pairs.append((first, second) if i % 2 else (second, first))
    differences = sorted(s - t for s, t in pairs)
    median = (differences[5] + differences[6]) / 2
    assert abs(median) < 0.05, pairs
    # A stranger's code never works.
    refused = sub.http.post(f"{API}/session", json={"phone": STRANGER, "code": "123456"})
    assert refused.status_code == 403


def test_the_code_is_stored_hashed(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    code = sms_code(sub.outbox, MAIN[2])
    with sub.ledger.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(sms_codes))]
    assert len(rows) == 1 and code not in json.dumps(rows, default=str)
    assert rows[0]["code_hash"] != hashlib.sha256(code.encode()).hexdigest()


# ---------------------------------------------------------------------------- codes


def test_a_used_code_fails(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    code = sms_code(sub.outbox, MAIN[2])
    first = sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": code})
    again = sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": code})
    assert first.status_code == 200 and again.status_code == 403
    assert again.json()["type"] == "urn:invoicer:problem:code-refused"


def test_the_right_code_after_expiry_fails_and_the_session_expires(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    code = sms_code(sub.outbox, MAIN[2])
    sub.clock.advance(15 * 60 + 1)
    late = sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": code})
    assert late.status_code == 403
    token = session(sub)
    history = sub.http.get(f"{API}/invoices", headers=bearer(token)).json()
    sub.clock.advance(15 * 60 + 1)
    assert sub.http.get(f"{API}/invoices", headers=bearer(token)).status_code == 403
    assert sub.http.get(history["latest"]["document"]).status_code == 404


def test_a_newer_code_replaces_the_older(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    old = sms_code(sub.outbox, MAIN[2])
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    new = sms_code(sub.outbox, MAIN[2], after=1)
    if old != new:
        assert sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": old}
                             ).status_code == 403
    assert sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": new}
                         ).status_code == 200


def test_five_wrong_tries_kill_the_code_and_1000_get_nowhere(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    code = sms_code(sub.outbox, MAIN[2])
    wrong = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, 1001)]
    statuses = []
    for guess in wrong[:5]:
        statuses.append(sub.http.post(f"{API}/session",
                                      json={"phone": MAIN[2], "code": guess}).status_code)
    assert statuses == [403] * 5
    # The sixth try is the right code: too late, the code is dead.
    assert sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": code}
                         ).status_code == 403
    # The rest of the thousand: refused, and after the per-number limit, 429.
    for guess in wrong[5:]:
        statuses.append(sub.http.post(f"{API}/session",
                                      json={"phone": MAIN[2], "code": guess}).status_code)
    assert set(statuses) == {403, 429} and 200 not in statuses
    limit = sub.access.limits.tries_per_phone
    assert statuses.index(429) == limit - 1  # the code's own try above counted too
    limited = sub.http.post(f"{API}/session", json={"phone": MAIN[2], "code": code})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    with sub.ledger.engine.connect() as conn:
        (attempts,) = conn.execute(sa.select(sms_codes.c.attempts)).one()
    assert attempts == 5
    # A new window and a new code: the subscriber gets in.
    sub.clock.advance(15 * 60)
    assert session(sub)


def test_code_requests_are_limited_per_number_and_per_client(sub):
    got = [sub.http.post(f"{API}/sms-code", json={"phone": STRANGER}).status_code
           for _ in range(5)]
    assert got == [202, 202, 202, 429, 429]
    # Another number still gets through; the client's own limit is separate.
    assert sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]}).status_code == 202
    store = sub.ledger.access
    store.forget(older_than=__import__("datetime").timedelta(0))


def test_racing_right_answers_open_one_session(sub):
    sub.http.post(f"{API}/sms-code", json={"phone": MAIN[2]})
    code = sms_code(sub.outbox, MAIN[2])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: sub.http.post(
            f"{API}/session", json={"phone": MAIN[2], "code": code}).status_code, range(8)))
    assert sorted(answers) == [200] + [403] * 7


@pytest.mark.parametrize("body", [{"phone": "5521987654321"}, {"phone": "+55 21 9"},
                                  {"phone": MAIN[2], "extra": 1}, {}])
def test_malformed_code_requests_are_422(sub, body):
    got = sub.http.post(f"{API}/sms-code", json=body)
    assert got.status_code == 422 and got.headers["content-type"] == "application/problem+json"


# ---------------------------------------------------------------------------- refusals


def _flip(token: str, bit: int) -> str:
    payload, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac


@WITH_S3
def test_documents_of_others_are_refused_and_leak_nothing(sub):
    now = sub.clock().timestamp()
    mine = "OI-2026-11-0000123"
    theirs = "OI-2026-11-0000777"  # the neighbour's, same operator
    good = link_token("oi", MAIN[1], mine, now=now)
    secret_bytes = [archived(sub, "oi", theirs), archived(sub, "vivo", "VV-2026-11-0000042")]
    attempts = [
        # Guessing numbers: my account, their number; their account, their number but
        # signed with a wrong secret.
        link_token("oi", MAIN[1], theirs, now=now),
        link_token("oi", NEIGHBOUR[1], theirs, now=now, secret=b"guessed"),
        # Another operator: the right account and number under another operator id.
        link_token("vivo", MAIN[1], mine, now=now),
        link_token("vivo", OTHER_OPERATOR[1], "VV-2026-11-0000042", now=now, secret=SECRET[:-1]),
        # Expired a second ago.
        link_token("oi", MAIN[1], mine, ttl=-1, now=now),
        # Path tricks in the number.
        link_token("oi", MAIN[1], "../2222222222/2026-10/OI-2026-11-0000777", now=now),
        link_token("oi", MAIN[1], "..%2F..%2Fvivo", now=now),
        # Truncated, padded, empty.
        good[:-1], good + "A", "." + good.split(".")[1], "x",
    ]
    # One bit flipped anywhere in the payload, and in the signature.
    payload_bits = len(good.split(".")[0]) * 6 // 8 * 8
    attempts += [_flip(good, bit) for bit in range(0, payload_bits, 7)]
    mac = good.split(".")[1]
    flipped_mac = ("B" if mac[0] == "A" else "A") + mac[1:]
    attempts.append(good.split(".")[0] + "." + flipped_mac)
    bodies = set()
    for token in attempts:
        for path in (f"/invoices/{token}.pdf", f"/invoices/{token}/second-copy.pdf"):
            got = sub.http.get(path)
            assert got.status_code in (403, 404), (path, got.status_code)
            assert not any(s[:2000] in got.content for s in secret_bytes)
            assert b"%PDF" not in got.content
            if got.status_code == 404:
                bodies.add(got.content)
    assert len(bodies) == 1  # one answer, whatever was tried
    # Separators in the URL itself.
    for path in ("/invoices/../archive/oi/2222222222/2026-11/OI-2026-11-0000777.pdf",
                 "/invoices/%2E%2E%2Foi%2F2222222222%2F2026-11%2FOI-2026-11-0000777.pdf",
                 f"/invoices/{good}%2F..%2F.pdf", f"/invoices/{good}%00.pdf",
                 "/invoices/..%2f..%2fledger.db.pdf"):
        got = sub.http.get(path)
        assert got.status_code in (403, 404), (path, got.status_code)
        assert b"%PDF" not in got.content
    assert sub.http.get(f"/invoices/{good}.pdf").status_code == 200


@BOTH_DATABASES
def test_a_session_reaches_only_its_own_account(sub):
    token = session(sub)
    for number in ("OI-2026-11-0000777", "VV-2026-11-0000042", "../OI-2026-11-0000777",
                   "..%2FOI-2026-11-0000777", "OI-2026-11-0000124", "%2e%2e", "a" * 65):
        got = sub.http.post(f"{API}/invoices/{number}/second-copy", headers=bearer(token))
        assert got.status_code in (403, 404), (number, got.status_code)
        assert "sha256" not in got.text
    assert sub.ledger.access.second_copy(
        sub.ledger.invoices.get("oi", "OI-2026-11-0000777").id) is None
    # The MAC's last two characters replaced by others ("AA" unless they are "AA"
    # already: about one token in a thousand ends so, and the "altered" token would be
    # the real one).
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "QA")
    assert altered != token
    for bad in (altered, _flip(token, 9), "x", "ik_0000000000_" + "A" * 43):
        got = sub.http.get(f"{API}/invoices", headers=bearer(bad))
        assert got.status_code in (401, 403) and "invoices" not in got.json()
    # A link for one invoice is not a session, and a session is not a link.
    assert sub.http.get(f"/invoices/{token}.pdf").status_code == 404


# ---------------------------------------------------------------------------- second copies


def test_a_second_copy_is_the_original_marked_and_made_once(sub):
    token = session(sub)
    number = "OI-2026-10-0000123"
    first = sub.http.post(f"{API}/invoices/{number}/second-copy", headers=bearer(token))
    assert first.status_code == 200, first.text
    again = sub.http.post(f"{API}/invoices/{number}/second-copy", headers=bearer(token))
    assert again.json()["sha256"] == first.json()["sha256"]
    assert again.json()["created_at"] == first.json()["created_at"]
    pdf = sub.http.get(first.json()["document"])
    assert pdf.status_code == 200 and hashlib.sha256(pdf.content).hexdigest() == \
        first.json()["sha256"]
    original = archived(sub, "oi", number)
    assert pdf.content != original
    text = _text(pdf.content)
    assert "2ª via" in text and number in text
    assert "2ª via" not in _text(original)
    invoice = sub.ledger.invoices.get("oi", number)
    copy = sub.ledger.access.second_copy(invoice.id)
    assert copy.archive_key == invoice.archive_key.removesuffix(".pdf") + ".duplicate.pdf"
    assert sub.archive.get(copy.archive_key) == pdf.content


def _text(pdf: bytes) -> str:
    import subprocess

    return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()


def test_concurrent_second_copies_make_one(sub):
    token = session(sub)
    number = "OI-2026-08-0000123"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: sub.http.post(
            f"{API}/invoices/{number}/second-copy", headers=bearer(token)), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["sha256"] for a in answers}) == 1
    invoice = sub.ledger.invoices.get("oi", number)
    prefix = invoice.archive_key.rsplit("/", 1)[0]
    assert [k for k in sub.archive.list(prefix) if number in k] == [
        f"{prefix}/{number}.duplicate.pdf", f"{prefix}/{number}.json", f"{prefix}/{number}.pdf"]
    with pikepdf.open(__import__("io").BytesIO(sub.http.get(answers[0].json()["document"])
                                               .content)) as pdf:
        assert len(pdf.pages) >= 1
