"""The detailed bill on demand and business accounts, over real HTTP (``sub`` fixture):
PDF issued once and archived beside the original, CSV streamed and injection-safe,
signed links refused when altered, expired or another's; fleet managers registered by
the billing system; a line's own phone limited to its line."""

from __future__ import annotations

import csv
import io

from invoicer.billing import parse_record
from invoicer.renderer import render_details
from invoicer.workflows.second_copy import canonical_key
from tests.api.conftest import auth, sms_code
from tests.api.fleet_world import (
    HOSTILE,
    MANAGER,
    NORRSKEN,
    OI_BUSINESS,
)
from tests.api.world import MAIN, NEIGHBOUR

LATEST = "OI-2026-11-0000123"
NEIGHBOURS = "OI-2026-11-0000777"


def session(sub, phone: str) -> dict:
    """Open a session for ``phone`` through the SMS code; the session's JSON."""
    before = len([m for m in sub.outbox.messages() if m.to == phone])
    assert sub.http.post("/v1/subscriber/sms-code", json={"phone": phone}).status_code == 202
    code = sms_code(sub.outbox, phone, after=before)
    got = sub.http.post("/v1/subscriber/session", json={"phone": phone, "code": code})
    assert got.status_code == 200, got.text
    return got.json()


def no_code_for(sub, phone: str) -> None:
    """Asking for a code for ``phone`` sends nothing (the answer is the same 202)."""
    before = len(sub.outbox.messages())
    assert sub.http.post("/v1/subscriber/sms-code", json={"phone": phone}).status_code == 202
    sub.app.state.deferred.join()  # the lookup runs after the answer: wait for it
    assert len(sub.outbox.messages()) == before


def rows(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def flip(link: str) -> str:
    """The link with one character of its signature changed."""
    head, _, tail = link.rpartition(".")
    token_end = head[-1]
    return head[:-1] + ("A" if token_end != "A" else "B") + "." + tail


# ---------------------------------------------------------------------------- detailed bill


def test_detailed_bill_is_made_once_archived_beside_the_original_and_downloads(sub):
    token = session(sub, MAIN[2])["token"]
    first = sub.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill",
                          headers=auth(token))
    assert first.status_code == 200, first.text
    again = sub.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill",
                          headers=auth(token))
    body, body2 = first.json(), again.json()
    assert body["sha256"] == body2["sha256"] and body["created_at"] == body2["created_at"]
    invoice = sub.ledger.invoices.get("oi", LATEST)
    made = sub.ledger.detailed_bills.get(invoice.id)
    assert made.archive_key == invoice.archive_key.removesuffix(".pdf") + ".details.pdf"
    pdf = sub.http.get(body["pdf"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    head = sub.http.head(body["pdf"])
    assert head.status_code == 200 and head.headers["etag"] == f'"{body["sha256"]}"'
    assert sub.http.get(body["pdf"], headers={"Range": "bytes=0-3"}).content == b"%PDF"
    assert pdf.content == sub.archive.get(made.archive_key)
    # Rendered from the archived canonical record: the same bytes as rendering it now.
    record = parse_record(sub.archive.get(canonical_key(invoice)))
    assert pdf.content == render_details(record)
    assert pdf.content != sub.archive.get(invoice.archive_key)
    table = rows(sub.http.get(body["csv"]).content)
    assert table[0] == ["line", "date", "time", "number", "destination", "type",
                        "duration_s", "volume_kb", "cost", "currency"]
    assert table[1] == ["'+5521987654321", "2026-10-03", "14:22:05", "'+552133334444",
                        "Rio de Janeiro", "local", "125", "", "0.00", "BRL"]
    assert [r[5] for r in table[1:]] == ["local", "sms", "data"]
    assert table[3][7] == "524288" and table[3][6] == ""


def test_another_accounts_invoice_and_bad_links_are_refused(sub):
    token = session(sub, MAIN[2])["token"]
    # The neighbour's invoice, through my session: as if it did not exist.
    other = sub.http.post(f"/v1/subscriber/invoices/{NEIGHBOURS}/detailed-bill",
                          headers=auth(token))
    assert other.status_code == 404
    assert sub.http.post("/v1/subscriber/invoices/../detailed-bill",
                         headers=auth(token)).status_code in (404, 405)
    assert sub.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill").status_code == 401
    body = sub.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill",
                         headers=auth(token)).json()
    refusal = sub.http.get(flip(body["pdf"]))
    assert refusal.status_code == 404
    assert sub.http.get(flip(body["csv"])).content == refusal.content
    # A detailed-bill token is no invoice link, and an invoice link is no detail link.
    detail_token = body["pdf"].removeprefix("/details/").removesuffix(".pdf")
    assert sub.http.get(f"/invoices/{detail_token}.pdf").status_code == 404
    history = sub.http.get("/v1/subscriber/invoices", headers=auth(token)).json()
    invoice_token = history["latest"]["document"].removeprefix("/invoices/")
    assert sub.http.get(f"/details/{invoice_token}").status_code == 404
    assert sub.http.get(f"/details/{invoice_token.replace('.pdf', '.csv')}"
                        ).status_code == 404
    # The neighbour's session cannot use my links' invoice either, but my link works
    # for whoever holds it until it expires (it is the credential) ...
    assert sub.http.get(body["csv"]).status_code == 200
    # ... and then never again.
    sub.clock.advance(16 * 60)
    assert sub.http.get(body["pdf"]).status_code == 404
    assert sub.http.get(body["csv"]).status_code == 404


def test_csv_streams_in_chunks_with_no_length_announced(sub):
    token = session(sub, MAIN[2])["token"]
    body = sub.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill",
                         headers=auth(token)).json()
    with sub.http.stream("GET", body["csv"]) as got:
        assert got.status_code == 200
        assert got.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-length" not in got.headers
        assert got.headers["transfer-encoding"] == "chunked"
        assert 'filename="OI-2026-11-0000123-details.csv"' in got.headers[
            "content-disposition"]
        chunks = list(got.iter_raw())
    # The header goes out on its own, before the record is even read.
    assert chunks[0].decode("utf-8-sig").strip() == (
        "line,date,time,number,destination,type,duration_s,volume_kb,cost,currency")


# ---------------------------------------------------------------------------- fleet managers


def test_billing_system_registers_managers_idempotently_and_only_for_its_operators(fleet):
    url = f"/v1/billing/operators/oi/accounts/{OI_BUSINESS[1]}/managers"
    body = {"managers": [{"phone": MANAGER, "email": "frota@example.com"}]}
    first = fleet.http.put(url, json=body, headers=auth(fleet.billing))
    assert first.status_code == 200, first.text
    again = fleet.http.put(url, json=body, headers=auth(fleet.billing))
    assert again.json() == first.json()
    assert [m["phone"] for m in fleet.http.get(url, headers=auth(fleet.billing)
                                               ).json()["managers"]] == [MANAGER]
    assert fleet.http.put(url, json=body, headers=auth(fleet.tokens["shop"])
                          ).status_code == 403
    assert fleet.http.put("/v1/billing/operators/vivo/accounts/X1/managers", json=body,
                          headers=auth(fleet.billing)).status_code == 403
    twice = {"managers": [{"phone": MANAGER}, {"phone": MANAGER}]}
    assert fleet.http.put(url, json=twice, headers=auth(fleet.billing)).status_code == 422
    bad = {"managers": [{"phone": "5521966660001"}]}
    assert fleet.http.put(url, json=bad, headers=auth(fleet.billing)).status_code == 422
    assert fleet.http.put(url, json=body).status_code == 401


def test_a_manager_sees_the_account_its_lines_and_each_lines_details(fleet):
    url = f"/v1/billing/operators/oi/accounts/{OI_BUSINESS[1]}/managers"
    fleet.http.put(url, json={"managers": [{"phone": MANAGER}]}, headers=auth(fleet.billing))
    got = session(fleet, MANAGER)
    assert (got["operator"], got["account"], got["line"]) == ("oi", OI_BUSINESS[1], None)
    token = got["token"]
    history = fleet.http.get("/v1/subscriber/invoices", headers=auth(token)).json()
    assert [i["number"] for i in history["invoices"]] == fleet.numbers["oi"]
    number = fleet.numbers["oi"][0]
    lines = fleet.http.get(f"/v1/subscriber/invoices/{number}/lines", headers=auth(token))
    assert lines.status_code == 200
    overview = lines.json()["lines"]
    assert [(ln["line"], ln["charges"], ln["calls"]) for ln in overview] == [
        (OI_BUSINESS[3][0], "83.00", 3), (OI_BUSINESS[3][1], "0.00", 2)]
    second = OI_BUSINESS[3][1]
    per_line = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                               params={"line": second}, headers=auth(token)).json()
    assert per_line["line"] == second
    table = rows(fleet.http.get(per_line["csv"]).content)
    assert {r[0] for r in table[1:]} == {"'" + second} and len(table) == 3
    # The hostile destination arrives as text, never as a formula.
    assert table[1][4] == "'" + HOSTILE
    assert fleet.http.get(overview[1]["csv"]).content == \
        fleet.http.get(per_line["csv"]).content
    whole = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                            headers=auth(token)).json()
    assert whole["sha256"] != per_line["sha256"]
    assert len(rows(fleet.http.get(whole["csv"]).content)) == 1 + 3 + 2
    pdf = fleet.http.get(per_line["pdf"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # Another account's invoice, through the manager's session: refused.
    assert fleet.http.get(f"/v1/subscriber/invoices/{LATEST}/lines",
                          headers=auth(token)).status_code == 404


def test_a_removed_manager_gets_no_code_and_a_pending_code_opens_nothing(fleet):
    url = f"/v1/billing/operators/oi/accounts/{OI_BUSINESS[1]}/managers"
    fleet.http.put(url, json={"managers": [{"phone": MANAGER}]}, headers=auth(fleet.billing))
    assert fleet.http.post("/v1/subscriber/sms-code", json={"phone": MANAGER}
                           ).status_code == 202
    code = sms_code(fleet.outbox, MANAGER)
    fleet.http.put(url, json={"managers": []}, headers=auth(fleet.billing))
    refused = fleet.http.post("/v1/subscriber/session", json={"phone": MANAGER, "code": code})
    assert refused.status_code == 403
    no_code_for(fleet, MANAGER)


def test_the_accounts_contact_phone_opens_the_whole_account(fleet):
    got = session(fleet, OI_BUSINESS[2])
    assert got["line"] is None
    number = fleet.numbers["oi"][0]
    assert fleet.http.get(f"/v1/subscriber/invoices/{number}/lines",
                          headers=auth(got["token"])).status_code == 200


# ---------------------------------------------------------------------------- a line's phone


def test_a_line_phone_gets_nothing_where_the_operator_keeps_lines_out(fleet):
    from invoicer.operator_settings import operator_settings

    assert operator_settings("oi").line_access == "none"
    assert operator_settings("norrsken").line_access == "own_line"
    no_code_for(fleet, OI_BUSINESS[3][0])


def test_a_line_phone_sees_its_own_line_only_and_is_refused_the_whole_account(fleet):
    mine, theirs = NORRSKEN[3][1], NORRSKEN[3][0]
    got = session(fleet, mine)
    assert (got["operator"], got["account"], got["line"]) == ("norrsken", NORRSKEN[1], mine)
    token = got["token"]
    number = fleet.numbers["norrsken"][0]
    # The whole account, however asked: refused.
    assert fleet.http.get("/v1/subscriber/invoices", headers=auth(token)).status_code == 403
    lines = fleet.http.get(f"/v1/subscriber/invoices/{number}/lines", headers=auth(token))
    assert lines.status_code == 403 and lines.json()["type"].endswith(":line-only")
    whole = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                            headers=auth(token))
    assert whole.status_code == 403 and whole.json()["type"].endswith(":line-only")
    assert fleet.http.post(f"/v1/subscriber/invoices/{number}/second-copy",
                           headers=auth(token)).status_code == 403
    other = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                            params={"line": theirs}, headers=auth(token))
    assert other.status_code == 404
    # Its own line: listed, and its details only.
    listed = fleet.http.get("/v1/subscriber/line/invoices", headers=auth(token)).json()
    assert [i["number"] for i in listed["invoices"]] == fleet.numbers["norrsken"]
    assert "amount" not in listed["invoices"][0]
    own = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                          params={"line": mine}, headers=auth(token))
    assert own.status_code == 200
    table = rows(fleet.http.get(own.json()["csv"]).content)
    assert {r[0] for r in table[1:]} == {"'" + mine}
    assert fleet.http.get(listed["invoices"][0]["csv"]).content == \
        fleet.http.get(own.json()["csv"]).content
    # Its line's section of an invoice: label, charges, calls; nothing of the others.
    section = fleet.http.get(f"/v1/subscriber/line/invoices/{number}", headers=auth(token))
    assert section.status_code == 200
    assert {k: section.json()[k] for k in ("line", "label", "total", "calls", "charges")} \
        == {"line": mine, "label": "Frota — linha 2", "total": "0.00", "calls": 2,
            "charges": []}
    assert fleet.http.get(f"/v1/subscriber/line/invoices/{LATEST}",
                          headers=auth(token)).status_code == 404
    # Another account's invoice through the line session: as if it did not exist.
    assert fleet.http.post(f"/v1/subscriber/invoices/{LATEST}/detailed-bill",
                           params={"line": mine}, headers=auth(token)).status_code == 404
    # An account session is no line session.
    account = session(fleet, NORRSKEN[2])["token"]
    assert fleet.http.get("/v1/subscriber/line/invoices",
                          headers=auth(account)).status_code == 403
    assert fleet.http.get(f"/v1/subscriber/line/invoices/{number}",
                          headers=auth(account)).status_code == 403


def test_a_summary_invoice_has_no_annex_and_its_detailed_bill_has_every_call(fleet):
    import subprocess

    number = fleet.numbers["norrsken"][0]
    invoice = fleet.ledger.invoices.get("norrsken", number)
    original = fleet.tmp / "summary.pdf"
    original.write_bytes(fleet.archive.get(invoice.archive_key))
    text = subprocess.run(["pdftotext", "-layout", str(original), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "Detalhamento de ligações" not in text and "+552133334444" not in text
    flat = " ".join(text.split())
    assert "https://invoices.example.net/access" in flat and NORRSKEN[2] in flat
    token = session(fleet, NORRSKEN[2])["token"]
    body = fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                           headers=auth(token)).json()
    details = fleet.tmp / "details.pdf"
    details.write_bytes(fleet.http.get(body["pdf"]).content)
    text = subprocess.run(["pdftotext", "-layout", str(details), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "Detalhamento de ligações" in text and "+552133334444" in text
    assert NORRSKEN[3][0] in text and NORRSKEN[3][1] in text


def test_neighbours_cannot_open_each_others_lines(fleet):
    token = session(fleet, NEIGHBOUR[2])["token"]
    number = fleet.numbers["oi"][0]
    assert fleet.http.get(f"/v1/subscriber/invoices/{number}/lines",
                          headers=auth(token)).status_code == 404
    assert fleet.http.post(f"/v1/subscriber/invoices/{number}/detailed-bill",
                           params={"line": OI_BUSINESS[3][0]},
                           headers=auth(token)).status_code == 404


def test_a_hundred_thousand_call_csv_starts_arriving_within_a_second(sub):
    """Over real HTTP, from the request going out: the first byte in under a second
    (the header, sent before the 14 MB record is read), then every row."""
    import json
    import time

    from invoicer.pipeline import Services, process_record
    from invoicer.renderer import RenderOptions
    from tests.api.world import record

    number = "OI-2026-12-0100000"
    rec = record(*MAIN, number, 2026, 12)
    usage = rec["services"][0]["usage"]
    rec["services"][0]["usage"] = [usage[i % len(usage)] for i in range(100_000)]
    run = sub.ledger.runs.start("big")
    outcome = process_record(json.dumps(rec).encode(), line=1, run_id=run, services=Services(
        ledger=sub.ledger, archive=sub.archive, options=RenderOptions(detail="summary")))
    assert outcome.status == "archived"
    invoice = sub.ledger.invoices.get("oi", number)
    expires = int(sub.access.now() + 600)
    url = f"/details/{sub.access.detail_token(invoice, '', expires)}.csv"
    started = time.perf_counter()
    with sub.http.stream("GET", url) as got:
        chunks = got.iter_raw()
        first = next(chunks)
        first_byte = time.perf_counter() - started
        rest = b"".join(chunks)
    assert first_byte < 1.0, first_byte
    assert first.decode("utf-8-sig").startswith("line,date,time")
    assert (first + rest).count(b"\r\n") == 1 + 100_000


def test_detail_links_and_line_sessions_survive_a_secret_rotation(fleet):
    from invoicer.api.access import AccessService

    old, new = b"old-secret-0123456789abcdef0123", b"new-secret-0123456789abcdef0123"
    invoice = fleet.ledger.invoices.get("norrsken", fleet.numbers["norrsken"][0])
    before = AccessService(fleet.ledger, None, old)
    during = AccessService(fleet.ledger, None, (new, old))
    after = AccessService(fleet.ledger, None, new)
    expires = int(before.now() + 600)
    link = before.detail_token(invoice, "", expires)
    assert during.linked_detail(link) == (invoice, "")
    assert after.linked_detail(link) is None
    line = NORRSKEN[3][0]
    from invoicer.delivery import links
    from invoicer.delivery.links import LinkClaims

    token = links.sign(LinkClaims("norrsken", NORRSKEN[1], line, expires), before._line_key)
    assert during.line_grant(token).line == line
    assert after.line_grant(token) is None
    # Neither kind passes for the other, nor for an account session.
    assert during.grant(token) is None and during.line_grant(link) is None
