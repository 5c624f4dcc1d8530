"""Synthetic bill runs (``billing.synthetic``) and the hand-built samples (``samples/``).

Synthetic records feed load tests and benchmarks, so they must be exactly what a good
billing system sends: deterministic, reconciling to the minor unit, and accepted by our
own parser. The samples must be accepted (valid ones) or rejected naming the expected
field (invalid ones).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import get_currency_precision

from invoicer.billing import RecordError, parse_record
from invoicer.billing.synthetic import LOCALES, PROFILES, generate, main, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TZ = {p.locale: ZoneInfo(p.tz) for p in PROFILES}
CALLS = {"local", "long_distance", "intrazonal", "international", "roaming"}


def run(count: int, cdrs: int, seed: int) -> str:
    out = io.StringIO()
    write_jsonl(out, count, cdrs, seed)
    return out.getvalue()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    """A few runs with different seeds: a thousand records, every locale and shape."""
    return [r for seed in (1, 2, 3) for r in generate(350, 12, seed)]


def money_values(rec: dict):
    """``(path, value)`` of every money field of a record."""
    bal = rec["balance"]
    yield "balance.previous", bal["previous"]
    for i, p in enumerate(bal.get("payments", [])):
        yield f"balance.payments[{i}].amount", p["amount"]
    for i, a in enumerate(bal.get("adjustments", [])):
        yield f"balance.adjustments[{i}].amount", a["amount"]
    for s, svc in enumerate(rec["services"]):
        for c, ch in enumerate(svc["charges"]):
            yield f"services[{s}].charges[{c}].amount", ch["amount"]
        for u, cdr in enumerate(svc.get("usage", [])):
            yield f"services[{s}].usage[{u}].amount", cdr["amount"]
    for t, tax in enumerate(rec.get("taxes", [])):
        yield f"taxes[{t}].base", tax["base"]
        yield f"taxes[{t}].amount", tax["amount"]
    for key, value in rec["totals"].items():
        yield f"totals.{key}", value
    for h, entry in enumerate(rec.get("history", [])):
        yield f"history[{h}].amount", entry["amount"]


# --- determinism and streaming ----------------------------------------------------------


def test_same_seed_same_bytes():
    assert run(200, 15, 42) == run(200, 15, 42)


def test_different_seeds_differ():
    a, b = run(50, 15, 1), run(50, 15, 2)
    assert a != b
    numbers = {json.loads(line)["invoice"]["number"] for line in (a + b).split("\n") if line}
    assert len(numbers) == 100, "runs with different seeds must not share invoice numbers"


def test_output_does_not_depend_on_string_hashing():
    # A set iterated somewhere would make the output change with PYTHONHASHSEED.
    digest = hashlib.sha256(run(150, 10, 9).encode()).hexdigest()
    code = ("import hashlib, io; from billing.synthetic import write_jsonl; o = io.StringIO(); "
            "write_jsonl(o, 150, 10, 9); print(hashlib.sha256(o.getvalue().encode()).hexdigest())")
    for hashseed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == digest


def test_generate_is_lazy():
    # A billion records: only works if nothing is built ahead of what is asked for.
    first = list(itertools.islice(generate(10**9, 5, 1), 3))
    assert len(first) == 3


def test_write_jsonl_writes_count_compact_lines():
    text = run(120, 8, 5)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 121
    for line in lines[:-1]:
        assert json.loads(line)["schema"] == "billing-record/1"
        assert ", " not in line[:40] and '": ' not in line[:40]  # compact separators
    assert "\\u" not in text  # ensure_ascii=False: the scripts are written as they are
    assert write_jsonl(io.StringIO(), 0, 8, 5) == 0
    assert write_jsonl(io.StringIO(), 7, 8, 5) == 7


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        next(generate(-1, 3, 1))
    with pytest.raises(ValueError):
        next(generate(1, -3, 1))


def test_command_line_writes_a_file(tmp_path):
    target = tmp_path / "run.jsonl"
    assert main(["--count", "4", "--cdrs", "3", "--seed", "8", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == run(4, 3, 8)


# --- what the records hold ------------------------------------------------------------


def test_every_record_reconciles_exactly(records):
    for rec in records:
        charges = sum(Decimal(c["amount"]) for s in rec["services"] for c in s["charges"])
        taxes = sum(Decimal(t["amount"]) for t in rec.get("taxes", []))
        adjustments = sum(Decimal(a["amount"]) for a in rec["balance"].get("adjustments", []))
        payments = sum(Decimal(p["amount"]) for p in rec["balance"].get("payments", []))
        totals = {k: Decimal(v) for k, v in rec["totals"].items()}
        assert totals["charges"] == charges
        assert totals["taxes"] == taxes
        assert totals.get("adjustments", Decimal(0)) == adjustments
        assert totals["total_due"] == (Decimal(rec["balance"]["previous"]) - payments
                                       + adjustments + charges + taxes)
        for tax in rec.get("taxes", []):
            base = sum(Decimal(c["amount"]) for s in rec["services"] for c in s["charges"]
                       if c.get("tax") == tax["code"])
            assert Decimal(tax["base"]) == base
            exact = base * Decimal(tax["rate"])
            # half-up to the minor unit: within half a unit, ties away from zero
            unit = Decimal(1).scaleb(-get_currency_precision(rec["invoice"]["currency"]))
            assert abs(Decimal(tax["amount"]) - exact) <= unit / 2


def test_money_strings_have_the_currency_minor_units(records):
    for rec in records:
        digits = get_currency_precision(rec["invoice"]["currency"])
        shape = re.compile(r"-?(0|[1-9][0-9]*)" + (rf"\.[0-9]{{{digits}}}" if digits else ""))
        for path, value in money_values(rec):
            assert isinstance(value, str) and shape.fullmatch(value), (path, value)
            assert not re.fullmatch(r"-0(\.0+)?", value), (path, value)


def test_cdr_counts_vary_around_the_mean():
    counts = [sum(len(s.get("usage", [])) for s in rec["services"])
              for rec in generate(3000, 20, 11)]
    assert 19 <= statistics.mean(counts) <= 21
    assert 3 <= statistics.pstdev(counts) <= 10
    near = sum(1 for c in counts if 12 <= c <= 28)
    assert near / len(counts) > 0.75, "most records are near the mean"
    assert 0 in counts and max(counts) >= 35
    assert all(not s.get("usage") for rec in generate(200, 0, 11) for s in rec["services"])


def test_mix_of_locales_segments_modes_and_payments(records):
    assert {r["invoice"]["locale"] for r in records} == set(LOCALES)
    assert set(LOCALES) == {"en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "fa_IR"}
    segments = Counter(r["account"]["segment"] for r in records)
    assert segments["consumer"] > 4 * segments["business"] > 0
    assert max(len(r["services"]) for r in records if r["account"]["segment"] == "business") > 5
    assert {r["delivery"]["mode"] for r in records} == {"electronic", "paper", "both"}
    assert {(r["payment"]["method"], r["payment"].get("scheme")) for r in records} == {
        ("barcode", "febraban"), ("barcode", "gost_qr"), ("barcode", "epc_qr"),
        ("barcode", "code128"), ("direct_debit", None), ("none", None)}
    kinds = Counter(r["invoice"]["kind"] for r in records)
    assert kinds["original"] > 10 * kinds["duplicate"] > 0
    currency = {r["invoice"]["locale"]: r["invoice"]["currency"] for r in records}
    assert currency["pt_BR"] == "BRL" and currency["ro_RO"] == "RON"
    assert currency["ru_RU"] == "RUB" and currency["nl_NL"] == "EUR"
    assert currency["fa_IR"] == "IRR"
    schemes = {(r["invoice"]["locale"], r["payment"].get("scheme")) for r in records}
    assert schemes <= {("pt_BR", "febraban"), ("ru_RU", "gost_qr"), ("nl_NL", "epc_qr"),
                       ("ro_RO", "code128"), ("fa_IR", "code128"), ("en", "code128"),
                       *((loc, None) for loc in LOCALES)}


def test_payment_method_follows_the_balance(records):
    for rec in records:
        due = Decimal(rec["totals"]["total_due"])
        method = rec["payment"]["method"]
        assert (method == "none") == (due <= 0), (method, due)
        if method != "barcode":
            assert rec["payment"] == {"method": method}


def test_cdrs_are_chronological_in_the_period_and_well_formed(records):
    for rec in records:
        tz = TZ[rec["invoice"]["locale"]]
        period = rec["invoice"]["period"]
        lo = datetime.fromisoformat(period["start"]).replace(tzinfo=tz)
        hi = datetime.fromisoformat(period["end"]).replace(tzinfo=tz)
        for svc in rec["services"]:
            starts = [datetime.fromisoformat(u["start"]) for u in svc.get("usage", [])]
            assert starts == sorted(starts)
            for u, when in zip(svc.get("usage", []), starts, strict=True):
                # the offset in force in the locale's zone at that instant
                assert when.utcoffset() == when.astimezone(tz).utcoffset(), u["start"]
                assert lo <= when and when.date() <= hi.date()
                if u["type"] == "data":
                    assert "called" not in u and "duration_s" not in u
                    assert isinstance(u["volume_kb"], int) and u["volume_kb"] >= 0
                elif u["type"] in CALLS:
                    assert isinstance(u["duration_s"], int) and u["duration_s"] >= 0
                    assert "volume_kb" not in u and u["called"].startswith("+")
                else:
                    assert u["type"] in ("sms", "mms") and "duration_s" not in u


def test_history_has_at_most_13_earlier_periods(records):
    for rec in records:
        periods = [h["period"] for h in rec.get("history", [])]
        assert len(periods) <= 13 and periods == sorted(periods)
        assert all(p < rec["invoice"]["issue_date"][:7] for p in periods)


def test_text_is_in_each_locale_script(records):
    by_locale: dict[str, str] = {}
    for rec in records:
        by_locale.setdefault(rec["invoice"]["locale"], "")
        by_locale[rec["invoice"]["locale"]] += json.dumps(rec, ensure_ascii=False)
    assert set("çãõ") <= set(by_locale["pt_BR"])
    # Romanian comma-below letters, never the Turkish cedilla look-alikes.
    assert set("șțăîâ") <= set(by_locale["ro_RO"])
    assert not set("şţŞŢ") & set(by_locale["ro_RO"])
    assert re.search("[А-Яа-яЁё]{4}", by_locale["ru_RU"])
    assert "ij" in by_locale["nl_NL"] and "IJ" in by_locale["nl_NL"]
    # Persian letters (U+06CC yeh, U+06A9 keheh), not their Arabic forms.
    assert set("یک") <= set(by_locale["fa_IR"]) and not set("يك") & set(by_locale["fa_IR"])


def test_email_addresses_are_reserved_domains(records):
    for rec in records:
        email = rec["delivery"].get("email")
        if email:
            assert re.fullmatch(r"[a-z0-9.+-]+@([a-z0-9-]+\.example|example\.(com|net|org))",
                                email), email


# --- the parser agrees ----------------------------------------------------------------


def test_every_generated_record_parses(records):
    for rec in records:
        parse_record(rec)


def test_generated_lines_parse_as_json_text():
    for number, line in enumerate(run(60, 30, 77).split("\n")[:-1], start=1):
        parse_record(line, line=number)


def load_samples_build():
    spec = importlib.util.spec_from_file_location("samples_build", SAMPLES / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jsonl_lines(path: Path) -> list[str]:
    """The lines of a JSON Lines file, split on LF only: str.splitlines() would also split
    on the NEL and LINE SEPARATOR characters that JSON leaves unescaped inside strings."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.split("\n")[:-1]


def test_sample_files_are_up_to_date():
    build = load_samples_build()
    lines = jsonl_lines(SAMPLES / "invoices.jsonl")
    assert lines == [build.dumps(make()) for make in build.SAMPLES]
    invalid = jsonl_lines(SAMPLES / "invalid.jsonl")
    assert invalid == [line for line, _, _ in build.invalid_cases()]


def test_every_sample_record_parses():
    lines = jsonl_lines(SAMPLES / "invoices.jsonl")
    assert len(lines) >= 14
    parsed = [parse_record(line, line=n) for n, line in enumerate(lines, start=1)]
    locales = {p.invoice.locale for p in parsed}
    assert {"en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "fa_IR", "de_CH"} <= locales
    assert max(len(p.services) for p in parsed if p.account.segment == "business") >= 50
    assert max(sum(len(s.usage) for s in p.services) for p in parsed) >= 5000
    assert {p.payment.scheme and p.payment.scheme.value for p in parsed} >= {
        "febraban", "gost_qr", "epc_qr", "code128"}
    assert {p.payment.method.value for p in parsed} == {"barcode", "direct_debit", "none"}
    assert {p.delivery.mode.value for p in parsed} == {"electronic", "paper", "both"}
    assert any(p.invoice.kind.value == "duplicate" for p in parsed)


def invalid_lines():
    expected = json.loads((SAMPLES / "invalid.expected.json").read_text(encoding="utf-8"))
    lines = jsonl_lines(SAMPLES / "invalid.jsonl")
    assert len(lines) == len(expected) >= 30
    return [pytest.param(lines[e["line"] - 1], e, id=f"{e['line']}:{e['path'] or 'line'}")
            for e in expected]


@pytest.mark.parametrize(("line", "expected"), invalid_lines())
def test_invalid_sample_is_rejected_naming_the_path(line, expected):
    with pytest.raises(RecordError) as info:
        parse_record(line, line=expected["line"])
    err = info.value
    assert err.line == expected["line"]
    # One defect, one named field: the first issue, and no other field dragged in.
    assert err.path == expected["path"], [str(i) for i in err.issues]
    assert {i.path for i in err.issues} == {expected["path"]}, [str(i) for i in err.issues]


def test_einvoice_share_adds_business_records_asking_for_each_format():
    plain = run(300, 5, 21)
    out = io.StringIO()
    write_jsonl(out, 300, 5, 21, 0.0)
    assert out.getvalue() == plain, "share 0 leaves a run as it always was"
    records = list(generate(1500, 3, 21, einvoice=1.0))
    asking = [r for r in records if "einvoice" in r["delivery"]]
    assert {r["delivery"]["einvoice"]["format"] for r in asking} == {
        "factur-x", "xrechnung-cii", "xrechnung-ubl", "peppol-bis3", "ro-cius"}
    for rec in asking:
        assert rec["schema"] == "billing-record/1.1"
        assert rec["account"]["segment"] == "business"
        parse_record(rec)
    assert all(r["schema"] == "billing-record/1" for r in records if r not in asking)
    with pytest.raises(ValueError):
        next(generate(1, 1, 1, einvoice=1.5))
