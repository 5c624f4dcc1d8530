"""Parse one billing record: JSON text or object in, a checked ``BillingRecord`` out.

This is the single entry point to the contract; everything that takes records (the
JSON Lines reader, the Celery task, the HTTP endpoint) goes through
:func:`parse_record`, so every path rejects the same records with the same errors.
"""

from __future__ import annotations

import codecs
import gc
import json
import logging
import sys
from functools import cache
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from pydantic import TypeAdapter, ValidationError

from invoicer.billing.cdr import UsageReader
from invoicer.billing.checks import check_record
from invoicer.billing.errors import Issue, RecordError, format_path
from invoicer.billing.fields import currency_minor_units, precision_error
from invoicer.billing.models import SCHEMA_VERSION, SCHEMA_VERSIONS, BillingRecord, Usage

log = logging.getLogger(__name__)

#: A record with a broken CDR table could report 100,000 errors; the first few are
#: enough to fix the producer.
MAX_ISSUES = 20


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a billing record")


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN`` and ``Infinity`` (not JSON, not money)."""
    return json.loads(text, parse_constant=_reject_constant)


def json_error(exc: ValueError, text: str | bytes) -> Issue:
    """An Issue for a line that is not JSON, telling truncation apart from garbage."""
    if isinstance(exc, UnicodeDecodeError):
        return Issue("", f"the line is not valid UTF-8 (byte {exc.start})", "not_utf8")
    if isinstance(exc, json.JSONDecodeError):
        # The decoder stopped because the text ran out (mid-value or inside a string
        # that never closes): a cut-off line, not garbage.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return Issue("", "the line ends before its JSON object does (truncated record?)",
                         "truncated")
        return Issue("", f"the line is not valid JSON: {exc.msg} at column {exc.colno}",
                     "not_json")
    return Issue("", f"the line is not valid JSON: {exc}", "not_json")


def readable_invoice_number(data: Any) -> str | None:
    """The invoice number as far as it can be read from unvalidated data, for errors."""
    try:
        number = data["invoice"]["number"]
    except (TypeError, KeyError, IndexError):
        return None
    if isinstance(number, str):
        # Only the safe characters: this string goes to terminals and log lines.
        return "".join(c for c in number[:64] if c.isprintable()) or None
    return None


#: Lines longer than this have their CDRs validated while they are decoded.
LARGE_LINE = 1 << 20


def parse_record(data: str | bytes | dict, *, line: int | None = None) -> BillingRecord:
    """Validate one record (JSON text or an already decoded object).

    Returns the frozen :class:`BillingRecord`; raises :class:`RecordError` naming the
    line, the invoice number where readable, the field path and what is wrong.

    Total: whatever the input holds (nesting past the interpreter's recursion limit,
    numbers too long to convert, anything the contract's own code trips on), the
    answer is a record or a :class:`RecordError`, never another exception, so a bill
    run dead-letters the line with a reason and goes on with the next.
    """
    try:
        return _parse_record(data, line=line)
    except RecordError:
        raise
    except RecursionError:
        raise RecordError(Issue("", "the record nests objects or arrays too deeply to be "
                                "read (a billing record is a few levels deep)", "too_deep"),
                          line=line) from None
    except MemoryError:
        raise
    except Exception as exc:  # a gap in the contract's checks: dead-letter, and say so
        log.exception("line %s: unexpected error while validating a record", line)
        raise RecordError(Issue("", f"the record could not be read: {type(exc).__name__}",
                                "unreadable"), line=line) from None


def _parse_record(data: str | bytes | dict, *, line: int | None = None) -> BillingRecord:
    reader: UsageReader | None = None
    if isinstance(data, str | bytes):
        try:
            # Decoded here, strictly: json.loads would guess UTF-16/32 from a BOM, and the
            # contract says UTF-8.
            if isinstance(data, bytes) and len(data) > LARGE_LINE:
                data, reader = _loads_large(data)
            else:
                text = data.decode("utf-8") if isinstance(data, bytes) else data
                if len(text) > LARGE_LINE:
                    data, reader = _loads_with_cdrs(text)
                else:
                    data = loads(text)
        except ValueError as exc:
            raise RecordError(json_error(exc, data), line=line) from None
    number = readable_invoice_number(data)
    if not isinstance(data, dict):
        raise RecordError(Issue("", "a billing record must be a JSON object", "not_object"),
                          line=line)
    if data.get("schema") == SCHEMA_VERSION:
        data = _as_version_1(data)
    try:
        record = BillingRecord.model_validate(data, context=_context(data))
    except ValidationError as exc:
        issues = [_issue(e) for e in exc.errors(include_url=False)[:MAX_ISSUES]]
        raise RecordError(issues, line=line, invoice_number=number) from None
    issues = check_record(record)
    if reader is not None:
        issues = _cdr_precision(record, _context(data), reader) + issues
    if issues:
        raise RecordError(issues[:MAX_ISSUES], line=line, invoice_number=number)
    return record


#: Fields that version 1.1 added, by the path of the object holding them. In a
#: version-1 record they are unknown extra fields, which the contract ignores.
_ADDED_IN_1_1: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("delivery",), ("einvoice",)),
    (("operator",), ("vat_id", "endpoint")),
    (("account", "customer"), ("vat_id",)),
    (("payment",), ("debit",)),
)
_TAX_ADDED_IN_1_1 = ("category", "exemption_reason", "exemption_code")


def _as_version_1(data: dict) -> dict:
    """``data`` without the fields of version 1.1 (copied only where one is present).

    The 1.1 fields were unknown extra fields in version 1, so a version-1 record that
    happens to carry one means exactly what it meant before: the field is ignored.
    """
    out = data
    for path, names in _ADDED_IN_1_1:
        parents = [out]
        for key in path:
            child = parents[-1].get(key) if isinstance(parents[-1], dict) else None
            parents.append(child)
        holder = parents[-1]
        if not isinstance(holder, dict) or not any(n in holder for n in names):
            continue
        if out is data:
            out = dict(data)
            parents[0] = out
        # Copy the chain down to the holder, so the caller's objects stay untouched.
        node = out
        for key in path:
            node[key] = dict(node[key])
            node = node[key]
        for n in names:
            node.pop(n, None)
    taxes = out.get("taxes")
    if isinstance(taxes, list) and any(isinstance(t, dict) and any(n in t for n in
                                                                   _TAX_ADDED_IN_1_1)
                                       for t in taxes):
        if out is data:
            out = dict(data)
        out["taxes"] = [{k: v for k, v in t.items() if k not in _TAX_ADDED_IN_1_1}
                        if isinstance(t, dict) else t for t in taxes]
    return out


def _loads_large(raw: bytes) -> tuple[Any, UsageReader | None]:
    """A long line decoded: from the narrow text of :func:`_narrow_utf8` where it has one,
    from the text as written otherwise, and always so when it is not a valid record's
    JSON (errors quote positions in the text as written)."""
    narrow = _narrow_utf8(raw)
    if narrow is not None and narrow[1] > LARGE_LINE:
        try:
            return _loads_with_cdrs(narrow[0])
        except ValueError:
            pass
    del narrow
    text = raw.decode("utf-8")
    if len(text) > LARGE_LINE:
        return _loads_with_cdrs(text)
    return loads(text), None


#: Bytes of a long line decoded at a time, and the most characters past U+00FF such a
#: piece may have to be escaped (more, and the line is decoded as it is).
_PIECE = 1 << 18
_WIDE_PER_PIECE = 64
_UCS1_SIZE = sys.getsizeof("\xe9") - 1  # a 1-byte-per-character str, less its characters


def _escape_wide(exc: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: characters past U+00FF as JSON ``\\u`` escapes (a pair
    for those past U+FFFF), except after a backslash, where that would change the JSON."""
    if (not isinstance(exc, UnicodeEncodeError)
            or (exc.start and exc.object[exc.start - 1] == "\\")):
        raise exc
    return encode_basestring_ascii(exc.object[exc.start:exc.end])[1:-1], exc.end


codecs.register_error("invoicer.json_escape", _escape_wide)


def _narrow_utf8(raw: bytes) -> tuple[str, int] | None:
    """``raw`` decoded as UTF-8 with its few characters past U+00FF written as JSON
    escapes, and the number of characters of the text as written; None where that is
    not possible or not worth it (invalid UTF-8, many such characters).

    One em dash in a 14 MB line makes CPython store its whole text at 2 bytes a
    character (29 MB instead of 14.6); the JSON escape decodes to the same character, so
    the record is the same while the peak of its parse is 14 MB lower (issue 18). Where
    the text is not valid JSON, its errors are reported from the text as written.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pieces: list[str] = []
    chars = 0
    try:
        for start in range(0, len(raw), _PIECE):
            piece = decoder.decode(raw[start:start + _PIECE],
                                   final=start + _PIECE >= len(raw))
            chars += len(piece)
            if not piece.isascii() and sys.getsizeof(piece) > _UCS1_SIZE + len(piece):
                wide = len(piece) - len(piece.encode("latin-1", "ignore"))
                if wide > _WIDE_PER_PIECE or (pieces and pieces[-1].endswith("\\")):
                    return None
                piece = piece.encode("latin-1", "invoicer.json_escape").decode("latin-1")
            if piece:  # (a piece may end inside a character: it is then decoded next)
                pieces.append(piece)
    except UnicodeError:
        return None
    return "".join(pieces), chars


@cache
def _usage_adapter() -> TypeAdapter:
    return TypeAdapter(Usage)


def _loads_with_cdrs(text: str) -> tuple[Any, UsageReader]:
    """``loads`` that turns each call-detail record into a ``Usage`` as it is decoded.

    A 100,000-CDR line decoded first and validated after holds 100,000 dicts and their
    strings at once (~60 MB); converted one by one, each dict is freed at once. Plain
    valid rows take the fast path of :mod:`billing.cdr` (pydantic per row was most of
    the parse); the model takes the rest. A CDR that fails stays a dict and is validated
    again in place, where its field path is known, so errors read the same on both
    paths. The currency is not known yet, so amount precision is checked afterwards by
    :func:`_cdr_precision`.
    """
    adapter = _usage_adapter()

    def model(obj: dict) -> Any:
        try:
            return adapter.validate_python(obj)
        except ValidationError:
            return obj

    reader = UsageReader(model)
    # The decoder makes 100,000s of objects and no reference cycle: the collector's
    # passes over them (a tenth of the parse) would find nothing, so it waits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        data = json.loads(text, object_hook=reader.hook, parse_constant=_reject_constant)
    finally:
        if collecting:
            gc.enable()
    return data, reader


def _cdr_precision(record: BillingRecord, context: dict, reader: UsageReader) -> list[Issue]:
    digits, currency = context.get("minor_units"), context.get("currency", "")
    if digits is None or not reader.precision_unknown(digits):
        return []
    issues = []
    # Amounts are shared Decimals (one per distinct text), so each is judged once; keyed
    # by identity, as 0.0 == 0.00 but their precision differs. The record keeps every
    # amount alive meanwhile, so no id is reused.
    judged: dict[int, str | None] = {}
    for i, service in enumerate(record.services):
        for j, usage in enumerate(service.usage):
            amount = usage.amount
            try:
                problem = judged[id(amount)]
            except KeyError:
                problem = judged[id(amount)] = precision_error(amount, digits, currency)
            if problem:
                issues.append(Issue(f"services[{i}].usage[{j}].amount", problem,
                                    "money_precision"))
                if len(issues) >= MAX_ISSUES:
                    return issues
    return issues


def _context(data: dict) -> dict:
    # Money precision depends on the record's own currency, so read it before the
    # models run; if it is not a known currency that field reports it by itself.
    invoice = data.get("invoice")
    currency = invoice.get("currency") if isinstance(invoice, dict) else None
    if isinstance(currency, str):
        digits = currency_minor_units(currency)
        if digits is not None:
            return {"currency": currency, "minor_units": digits}
    return {}


_MESSAGES = {
    "missing": "required field is missing",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
}


def _issue(error: dict) -> Issue:
    path = format_path(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "literal_error" and path == "schema":
        versions = " or ".join(repr(v) for v in SCHEMA_VERSIONS)
        message = (f"must be {versions}, got {_clip(error.get('input'))!r}: this service "
                   "implements versions 1 and 1.1 of the contract and does not guess at "
                   "others")
        kind = "schema_version"
    elif kind in ("enum", "literal_error"):
        message = f"{_clip(error.get('input'))!r} is not one of {ctx.get('expected', '')}"
        kind = "enum"
    elif kind == "too_short":
        message = f"must have at least {ctx.get('min_length')} item(s)"
    elif kind == "too_long":
        message = f"must have at most {ctx.get('max_length')} items"
    else:
        message = error["msg"]
    return Issue(path, message, kind)


def _clip(value: Any) -> Any:
    return value[:40] if isinstance(value, str) else value
