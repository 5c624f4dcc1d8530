"""Every rule of billing-record/1, from the accepting and the rejecting side."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from invoicer.billing import RecordError, parse_record
from invoicer.billing.fields import clean_text


def parse(rec: dict):
    return parse_record(json.dumps(rec, ensure_ascii=False), line=7)


def rejected(rec: dict) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse(rec)
    return info.value


def test_spec_example_is_valid(record):
    inv = parse(record)
    assert inv.invoice.number == "OI-2026-11-0000123"
    assert inv.totals.total_due == Decimal("104.75")
    assert inv.services[0].charges[0].quantity == Decimal("1")
    assert inv.services[0].usage[0].duration_s == 125
    assert inv.services[0].usage[0].start.utcoffset().total_seconds() == -3 * 3600
    assert inv.delivery.sms_notice is True


def test_parsed_record_is_frozen(record):
    inv = parse(record)
    with pytest.raises(ValueError):
        inv.invoice.number = "X"  # type: ignore[misc]


def test_optional_fields_take_their_defaults(record):
    for key in ("tax_id", "support"):
        del record["operator"][key]
    del record["account"]["customer"]["tax_id"]
    for key in ("email", "phone", "sms_notice", "attach_pdf"):
        del record["delivery"][key]
    record["delivery"]["mode"] = "paper"
    del record["balance"]["payments"]
    record["balance"]["previous"] = "0.00"
    del record["balance"]["adjustments"]
    del record["totals"]["adjustments"]
    for c in record["services"][0]["charges"]:
        c.pop("quantity"), c.pop("tax"), c.pop("unit", None)
    del record["services"][0]["usage"]
    del record["taxes"]
    record["totals"]["taxes"] = "0.00"
    record["totals"]["total_due"] = "83.00"
    record["payment"] = {"method": "direct_debit"}
    del record["history"]
    inv = parse(record)
    assert inv.delivery.sms_notice is False and inv.delivery.attach_pdf is True
    assert inv.totals.adjustments == 0 and inv.taxes == [] and inv.history == []
    assert inv.services[0].usage == [] and inv.services[0].charges[0].quantity == 1


def test_unknown_fields_are_ignored(record):
    record["x_billing_batch"] = 12
    record["invoice"]["x_extra"] = {"anything": True}
    record["services"][0]["usage"][0]["cell_id"] = "A17"
    parse(record)


def test_error_names_line_invoice_path_and_reason(record):
    record["services"][0]["usage"][0]["duration_s"] = -1
    err = rejected(record)
    assert err.line == 7
    assert err.invoice_number == "OI-2026-11-0000123"
    assert err.path == "services[0].usage[0].duration_s"
    assert "negative" in err.message
    assert str(err).startswith("line 7, invoice OI-2026-11-0000123: services[0].usage[0]")


def _set(path: str, value):
    """A mutator that sets (or, with ..., deletes) the dotted/indexed path."""
    def mutate(rec: dict) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        target = rec
        for p in parts[:-1]:
            target = target[int(p)] if p.isdigit() else target[p]
        last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return mutate


REJECTS = [
    # schema version
    (_set("schema", "billing-record/2"), "schema", "schema_version"),
    (_set("schema", ...), "schema", "missing"),
    # required fields at several depths
    (_set("invoice.number", ...), "invoice.number", "missing"),
    (_set("operator.address", ...), "operator.address", "missing"),
    (_set("account.customer.address.city", ...), "account.customer.address.city", "missing"),
    (_set("services[0].charges[1].category", ...), "services[0].charges[1].category", "missing"),
    (_set("services[0].usage[1].destination", ...), "services[0].usage[1].destination",
     "missing"),
    (_set("balance.payments[0].method", ...), "balance.payments[0].method", "missing"),
    (_set("totals.total_due", ...), "totals.total_due", "missing"),
    (_set("payment", ...), "payment", "missing"),
    (_set("delivery.mode", ...), "delivery.mode", "missing"),
    # money
    (_set("balance.previous", 120.5), "balance.previous", "money_not_string"),
    (_set("balance.previous", 120), "balance.previous", "money_not_string"),
    (_set("balance.previous", "NaN"), "balance.previous", "decimal_format"),
    (_set("balance.previous", "Infinity"), "balance.previous", "decimal_format"),
    (_set("balance.previous", "1.205e2"), "balance.previous", "decimal_format"),
    (_set("balance.previous", "120,50"), "balance.previous", "decimal_format"),
    (_set("balance.previous", " 120.50"), "balance.previous", "decimal_format"),
    (_set("balance.previous", "+120.50"), "balance.previous", "decimal_format"),
    (_set("balance.previous", "120.500"), "balance.previous", "money_precision"),
    (_set("services[0].usage[1].amount", "0.125"), "services[0].usage[1].amount",
     "money_precision"),
    (_set("history[0].amount", None), "history[0].amount", "decimal_type"),
    (_set("services[0].charges[0].quantity", 1.5), "services[0].charges[0].quantity",
     "money_not_string"),
    # currency, dates, instants
    (_set("invoice.currency", "XXZ"), "invoice.currency", "currency"),
    (_set("invoice.issue_date", "05/11/2026"), "invoice.issue_date", "date"),
    (_set("invoice.issue_date", "2026-02-30"), "invoice.issue_date", "date"),
    (_set("invoice.due_date", "2026-11-01"), "invoice.due_date", "date_order"),
    (_set("invoice.period.end", "2026-09-30"), "invoice.period.end", "date_order"),
    (_set("services[0].usage[0].start", "2026-10-03T14:22:05"), "services[0].usage[0].start",
     "instant"),
    (_set("services[0].usage[0].start", "2026-10-03 14:22:05-03:00"),
     "services[0].usage[0].start", "instant"),
    (_set("history[1].period", "2026-13"), "history[1].period", "month"),
    # phones, e-mail, country, locale
    (_set("delivery.phone", "21987654321"), "delivery.phone", "phone"),
    (_set("delivery.phone", "+55 21 98765-4321"), "delivery.phone", "phone"),
    (_set("services[0].usage[0].called", "+0123"), "services[0].usage[0].called", "phone"),
    (_set("delivery.email", "maria@example.com\r\nBcc: x@evil.test"), "delivery.email",
     "email"),
    (_set("delivery.email", "not-an-address"), "delivery.email", "email"),
    (_set("account.customer.address.country", "Brazil"), "account.customer.address.country",
     "country"),
    (_set("invoice.locale", "pt BR"), "invoice.locale", "locale"),
    # enumerations
    (_set("invoice.kind", "copy"), "invoice.kind", "enum"),
    (_set("account.segment", "vip"), "account.segment", "enum"),
    (_set("delivery.mode", "fax"), "delivery.mode", "enum"),
    (_set("services[0].charges[0].category", "fees"), "services[0].charges[0].category", "enum"),
    (_set("services[0].usage[2].type", "video"), "services[0].usage[2].type", "enum"),
    (_set("payment.method", "cash"), "payment.method", "enum"),
    (_set("payment.scheme", "pix"), "payment.scheme", "enum"),
    # identifiers that name stored objects
    (_set("invoice.number", "../../etc/passwd"), "invoice.number", "identifier"),
    (_set("invoice.number", "a/b"), "invoice.number", "identifier"),
    (_set("invoice.number", "a..b"), "invoice.number", "identifier"),
    (_set("invoice.number", "x" * 65), "invoice.number", "identifier"),
    (_set("invoice.number", "-leading"), "invoice.number", "identifier"),
    (_set("invoice.number", "OI-1\n"), "invoice.number", "identifier"),
    (_set("account.number", "12 34"), "account.number", "identifier"),
    (_set("operator.id", "oi\x00"), "operator.id", "identifier"),
    # whole numbers
    (_set("services[0].usage[0].duration_s", 12.5), "services[0].usage[0].duration_s",
     "whole_number"),
    (_set("services[0].usage[0].duration_s", "125"), "services[0].usage[0].duration_s",
     "whole_number"),
    (_set("services[0].usage[0].duration_s", True), "services[0].usage[0].duration_s",
     "whole_number"),
    (_set("services[0].usage[2].volume_kb", -5), "services[0].usage[2].volume_kb", "negative"),
    # text
    (_set("account.customer.name", "\u202e\x07"), "account.customer.name", "empty"),
    (_set("account.customer.name", 42), "account.customer.name", "string_type"),
    # shapes
    (_set("services", {}), "services", "list_type"),
    (_set("invoice", []), "invoice", "model_type"),
    (_set("delivery.sms_notice", "yes"), "delivery.sms_notice", "bool_type"),
    (_set("history", [{"period": "2025-01", "amount": "1.00"}] * 14), "history", "too_long"),
    (_set("account.customer.address.lines", []), "account.customer.address.lines", "too_short"),
    # reconciliation
    (_set("totals.charges", "83.01"), "totals.charges", "reconciliation"),
    (_set("totals.taxes", "20.70"), "totals.taxes", "reconciliation"),
    (_set("totals.adjustments", "0.00"), "totals.adjustments", "reconciliation"),
    (_set("balance.previous", "120.51"), "totals.total_due", "reconciliation"),
    # payment shape
    (_set("payment", {"method": "direct_debit", "code": "123"}), "payment.code",
     "payment_shape"),
    (_set("payment", {"method": "none"}), "payment.method", "payment_shape"),
    (_set("payment.scheme", ...), "payment.scheme", "missing"),
    (_set("payment.code", ...), "payment.code", "missing"),
    (_set("payment", {"method": "barcode", "scheme": "epc_qr", "code": "BCD"}),
     "payment.fields", "missing"),
    (_set("payment.code", "84680000001047501080000001234567890202611201"), "payment.code",
     "payment_code"),
]


@pytest.mark.parametrize(("mutate", "path", "reason"), REJECTS,
                         ids=[f"{p}:{r}" for _, p, r in REJECTS])
def test_rejects_naming_the_field(record, mutate, path, reason):
    mutate(record)
    err = rejected(record)
    assert (err.path, err.reason) == (path, reason), err.issues
    assert err.message and err.line == 7


@pytest.mark.parametrize("value", ["0", "-5.00", "12.3", "1000000.00", "0.00"])
def test_accepts_plain_decimal_money(record, value):
    record["history"][0]["amount"] = value
    assert parse(record).history[0].amount == Decimal(value)


def test_money_precision_follows_the_currency(record):
    # Iranian rial has no minor unit in CLDR; "1250000" is fine, "10.5" is not.
    record["invoice"]["currency"] = "IRR"
    record["history"][0]["amount"] = "10.5"
    err = rejected(record)
    assert err.path == "balance.previous" or any(
        i.path == "history[0].amount" and i.reason == "money_precision" for i in err.issues)


def test_identifiers_accept_the_safe_pattern(record):
    record["invoice"]["number"] = "A" + "b.c_d-9" * 9  # 64 chars
    record["account"]["number"] = "0"
    record["operator"]["id"] = "vivo.br"
    parse(record)


def test_text_is_cleaned_but_otherwise_kept(record):
    record["account"]["customer"]["name"] = "  <b>Maria</b>\u202e &amp; {{7*7}}\x07\nSouza\t "
    record["balance"]["adjustments"][0]["description"] = "line 1\r\nline 2\x1b[31m"
    inv = parse(record)
    assert inv.account.customer.name == "<b>Maria</b> &amp; {{7*7}} Souza"
    assert inv.balance.adjustments[0].description == "line 1\nline 2[31m"


def test_persian_joiners_survive_cleaning():
    # ZWNJ (U+200C) is part of Persian spelling; it is not a bidi override.
    assert clean_text("می\u200cخواهم") == "می\u200cخواهم"
    assert clean_text("a\u2066b\u2069c\u202dd") == "abcd"


def test_email_is_normalised(record):
    record["delivery"]["email"] = "Maria@EXAMPLE.com"
    assert parse(record).delivery.email == "Maria@example.com"


def test_unknown_locale_is_accepted_for_fallback(record):
    record["invoice"]["locale"] = "de_CH"
    assert parse(record).invoice.locale == "de_CH"


def test_credit_balance_with_method_none(record):
    record["balance"]["payments"][0]["amount"] = "300.00"
    record["totals"]["total_due"] = "-74.75"
    record["payment"] = {"method": "none"}
    assert parse(record).totals.total_due == Decimal("-74.75")


def test_several_issues_are_all_reported(record):
    record["invoice"]["currency"] = "??"
    record["delivery"]["phone"] = "x"
    err = rejected(record)
    assert {i.path for i in err.issues} >= {"invoice.currency", "delivery.phone"}


def test_not_an_object_and_not_json():
    with pytest.raises(RecordError) as info:
        parse_record("[1, 2]", line=3)
    assert info.value.reason == "not_object" and info.value.line == 3
    with pytest.raises(RecordError) as info:
        parse_record('{"schema": "billing-record/1", "invoice": {', line=4)
    assert info.value.reason == "truncated" and info.value.path == ""
    with pytest.raises(RecordError) as info:
        parse_record("{'single': 'quotes'}")
    assert info.value.reason == "not_json"
    with pytest.raises(RecordError) as info:
        parse_record('{"schema": NaN}')
    assert info.value.reason == "not_json"


@pytest.mark.parametrize(("mutate", "path", "reason"), REJECTS,
                         ids=[f"{p}:{r}" for _, p, r in REJECTS])
def test_messages_are_finished_sentences(record, mutate, path, reason):
    # A template placeholder left in a message is useless to the billing engineer.
    mutate(record)
    for issue in rejected(record).issues:
        assert "{" not in issue.message.replace("{{7*7}}", ""), issue.message


def test_message_quotes_the_offending_value(record):
    record["delivery"]["phone"] = "0219876"
    err = rejected(record)
    assert err.message.startswith("'0219876' is not an E.164 phone number")
    record["delivery"]["phone"] = "{x}"
    assert rejected(record).message.startswith("'{x}' is not an E.164")


def test_canonical_json_parses_back_to_the_same_record(recwarn):
    # The archive keeps record.model_dump_json() beside each PDF; a second copy is
    # re-rendered from it, so it must parse back to an equal record, silently.
    from tests.conftest import SAMPLES

    with open(SAMPLES / "invoices.jsonl", "rb") as f:
        for line in f:
            record = parse_record(line)
            assert parse_record(record.model_dump_json(by_alias=True)) == record
    assert not [w for w in recwarn if "serializ" in str(w.message)]
