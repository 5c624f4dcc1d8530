"""The fast path for call-detail records: a plain, valid CDR row to a ``Usage``.

A 100,000-call record spent most of its parse in pydantic validating one ``Usage`` per
row (issue 18). :class:`UsageReader` builds the same ``Usage`` from a row decoded by
``json``, with the contract's rules (:mod:`billing.fields`) inlined and the results for
repeated values (days, offsets, destinations, amounts) remembered for the record.

It only ever *accepts*: a row it is not sure of (a wrong type, a missing field, a value
a rule refuses, anything unexpected) goes to the pydantic model, which accepts it or
leaves it for the record's validation to report as it always has (same reason, same
field path). So errors come from one place only; what this module must get right is to
accept nothing the model refuses and to build exactly what the model builds, which
``tests/billing/test_cdr.py`` checks row by row against the model.

Amount precision depends on the record's currency, which is not known while the line is
decoded; the reader notes the most decimal places it accepted, so the record is only
scanned for the offending rows when one may be too precise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import Any

from invoicer.billing.fields import (
    _DECIMAL_RE,
    _E164_RE,
    _INSTANT_RE,
    _MAX_WHOLE,
    _offset,
    _shared_decimal,
    _text_validator,
)
from invoicer.billing.models import Usage, UsageType

#: Distinct days, offsets, destinations and amounts remembered per record: more than a
#: real record has, bounded for a hostile one.
CACHE_LIMIT = 4096

_TYPES: dict[str, UsageType] = {t.value: t for t in UsageType}
#: The validator of ``Text`` as the model runs it for ``destination``.
_destination_text = _text_validator(False, True)
#: The keys that make a decoded object a CDR (as before the fast path): raises KeyError
#: for any other object.
_cdr_keys = itemgetter("start", "type", "destination")

_FIELDS = ("start", "type", "called", "destination", "duration_s", "volume_kb", "amount")
if Usage.__slots__ != _FIELDS:
    raise ImportError("billing.cdr builds Usage slot by slot: follow its new fields")

# The pattern of an instant (fields._INSTANT_RE) in four consecutive pieces, the first
# two of fixed length (11 and 5 characters); the last two are read together.
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T")
_MINUTE_RE = re.compile(r"[0-9]{2}:[0-9]{2}")
_SECOND_RE = re.compile(r":[0-9]{2}(?:\.[0-9]{1,6})?")
_ZONE_RE = re.compile(r"Z|[+-][0-9]{2}:[0-9]{2}")


def _bare(pattern: str) -> str:
    return pattern.replace("?:", "").replace("(", "").replace(")", "")


if _bare(_INSTANT_RE.pattern) != "".join(
        _bare(p.pattern) for p in (_DAY_RE, _MINUTE_RE, _SECOND_RE, _ZONE_RE)):
    raise ImportError("billing.cdr reads instants piece by piece: follow fields._INSTANT_RE")


def _day(text: str) -> tuple[int, int, int]:
    """``YYYY-MM-DDT`` -> (year, month, day), a real date; ValueError otherwise."""
    if _DAY_RE.fullmatch(text) is None:
        raise ValueError(text)
    day = date.fromisoformat(text[:10])
    return day.year, day.month, day.day


def _minute(text: str) -> tuple[int, int]:
    """``HH:MM`` -> (hour, minute); range checked by ``datetime``."""
    if _MINUTE_RE.fullmatch(text) is None:
        raise ValueError(text)
    return int(text[:2]), int(text[3:])


def _rest(text: str) -> tuple[int, int, tzinfo]:
    """``:SS`` or ``:SS.f`` (1 to 6 digits, as fromisoformat reads them) and the offset
    -> (second, microsecond, tzinfo); ValueError if not so."""
    cut = -1 if text.endswith("Z") else -6
    if _SECOND_RE.fullmatch(text[:cut]) is None or _ZONE_RE.fullmatch(text[cut:]) is None:
        raise ValueError(text)
    fraction = text[4:cut]
    return int(text[1:3]), int(fraction.ljust(6, "0")) if fraction else 0, _offset(text[cut:])


def _cached(cache: dict[str, Any], key: str, parse: Callable[[str], Any]) -> Any:
    """``parse(key)``, remembered in ``cache`` while it holds fewer than CACHE_LIMIT."""
    value = parse(key)
    if len(cache) < CACHE_LIMIT:
        cache[key] = value
    return value


class _Unfrozen:
    """Usage's layout without its frozen ``__setattr__``: a row's slots are filled here by
    plain attribute stores (the fastest way there is), then it becomes the ``Usage`` it
    is by a change of class, which Python allows between identical slot layouts."""

    __slots__ = _FIELDS


# A layout change would make every row take the model's path: fail at import instead.
_probe = object.__new__(_Unfrozen)
_probe.__class__ = Usage
del _probe


class _Unsure(Exception):
    """The fast path leaves this row to the model."""


class UsageReader:
    """``hook`` turns each decoded CDR row into its ``Usage``; use one per record.

    ``hook(obj)`` is a ``json`` object hook: an object without ``start``, ``type`` and
    ``destination`` is returned as it is; a CDR row becomes a ``Usage`` through the fast
    path or else through ``model`` (a function that returns the ``Usage`` or the row
    itself when the model refuses it).
    """

    def __init__(self, model: Callable[[dict], Any]) -> None:
        #: Most decimal places of an amount the fast path accepted.
        self.max_places = 0
        #: Rows the fast path left to the model.
        self.slow = 0
        self.hook = self._make_hook(model)

    def precision_unknown(self, digits: int) -> bool:
        """Whether some accepted amount may have more than ``digits`` decimal places."""
        return self.slow > 0 or self.max_places > digits

    def _make_hook(self, model: Callable[[dict], Any]) -> Callable[[dict], Any]:
        days: dict[str, tuple[int, int, int]] = {}
        minutes: dict[str, tuple[int, int]] = {}
        rests: dict[str, tuple[int, int, tzinfo]] = {}
        destinations: dict[str, str] = {}
        amounts: dict[str, Decimal] = {}
        phone = _E164_RE.fullmatch
        decimal_text = _DECIMAL_RE.fullmatch
        types = _TYPES
        new = object.__new__
        max_whole = _MAX_WHOLE

        def slow(obj: dict) -> Any:
            self.slow += 1
            return model(obj)

        def hook(obj: dict) -> Any:
            try:
                start, kind, raw = _cdr_keys(obj)
            except KeyError:
                return obj
            # Any doubt raises, and the model says what it makes of the row. Where a
            # type check is left out, the next step takes only a str (a regex, a lookup
            # in a dict of str keys) and raises or misses for anything else.
            try:
                # start: Instant. Cut in three pieces (day, minute, second and offset),
                # each checked once per distinct piece against its part of the rule's
                # pattern: together, the whole pattern.
                # (Lookups by subscript: a miss, raising KeyError, is the rare case.)
                try:
                    year, month, day = days[start[:11]]
                except KeyError:
                    year, month, day = _cached(days, start[:11], _day)
                try:
                    hour, minute = minutes[start[11:16]]
                except KeyError:
                    hour, minute = _cached(minutes, start[11:16], _minute)
                try:
                    second, micro, tz = rests[start[16:]]
                except KeyError:
                    second, micro, tz = _cached(rests, start[16:], _rest)
                when = datetime(year, month, day, hour, minute, second, micro, tz)
                # type: UsageType (a str enum: only its values are keys)
                kind = types[kind]
                # destination: Text
                try:
                    destination = destinations[raw]
                except KeyError:
                    destination = _cached(destinations, raw, _destination_text)
                get = obj.get
                # called: Phone | None
                called = get("called")
                if called is not None and phone(called) is None:
                    raise _Unsure
                # duration_s, volume_kb: Count | None (bool is an int: excluded by type)
                duration = get("duration_s")
                if duration is not None and (type(duration) is not int
                                             or not 0 <= duration < max_whole):
                    raise _Unsure
                volume = get("volume_kb")
                if volume is not None and (type(volume) is not int
                                           or not 0 <= volume < max_whole):
                    raise _Unsure
                # amount: Money; its precision is judged once the currency is known
                text = get("amount")
                try:
                    amount = amounts[text]
                except KeyError:
                    if decimal_text(text) is None:
                        raise _Unsure from None
                    amount = _cached(amounts, text, _shared_decimal)
                    point = text.find(".")
                    places = 0 if point < 0 else len(text) - point - 1
                    if places > self.max_places:
                        self.max_places = places
                usage = new(_Unfrozen)
                usage.start = when
                usage.type = kind
                usage.called = called
                usage.destination = destination
                usage.duration_s = duration
                usage.volume_kb = volume
                usage.amount = amount
                usage.__class__ = Usage
                return usage
            except Exception:
                return slow(obj)

        return hook
