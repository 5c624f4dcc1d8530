"""SMS encoding and segmentation: GSM 03.38 7-bit or UCS-2, and how a text splits into parts.

Written here rather than taken from a library because the segment count is what an
operator pays for, and the rules are short enough to own and test (3GPP TS 23.038 for
the alphabet, TS 23.040 for concatenation):

- A text is sent in the **GSM 7-bit default alphabet** when every character is in the
  basic table or the basic extension table; characters of the extension table
  (``^ { } \\ [ ~ ] | €`` and form feed) are sent as ESC + code and cost **2 septets**.
  Anything else (``ç ã ș ț``, Cyrillic, Arabic script, emoji ...) forces **UCS-2**: the
  text is sent as UTF-16, where a character outside the BMP (most emoji) is a surrogate
  pair and costs **2 code units**.
- One SMS holds 160 septets or 70 UCS-2 code units. A longer text is sent as a
  concatenated SMS: each part loses room to the user data header (UDH, 6 octets) and
  holds **153 septets** or **67 code units**.
- A part boundary never falls inside an ESC pair or a surrogate pair: a receiving phone
  would show garbage for half a character. The character moves to the next part whole.

Parts are packed greedily (as full as possible, in order), which gives the fewest parts
any split in order can give. National language shift tables (TS 23.038 Rel-8: Turkish,
Portuguese, ...) are not used: gateways and handsets support them unevenly, and a
locking shift costs 3 septets of UDH per part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "BASIC",
    "EXTENSION",
    "GSM7",
    "PART_SEPTETS",
    "PART_UNITS",
    "SINGLE_SEPTETS",
    "SINGLE_UNITS",
    "UCS2",
    "Encoding",
    "Segmentation",
    "describe",
    "encode_gsm7",
    "encoding",
    "non_gsm_characters",
    "segment_count",
    "segments",
]

Encoding = Literal["gsm7", "ucs2"]
GSM7: Final = "gsm7"
UCS2: Final = "ucs2"

SINGLE_SEPTETS: Final = 160
"""Septets in a single (not concatenated) GSM 7-bit SMS: 140 octets * 8 / 7."""
PART_SEPTETS: Final = 153
"""Septets per part of a concatenated GSM 7-bit SMS (6 octets of UDH, padded to 7 septets)."""
SINGLE_UNITS: Final = 70
"""UTF-16 code units in a single UCS-2 SMS: 140 octets / 2."""
PART_UNITS: Final = 67
"""UTF-16 code units per part of a concatenated UCS-2 SMS: (140 - 6) / 2."""

ESCAPE: Final = 0x1B

# The basic table by septet code, 0x00 to 0x7F, as the Unicode mapping of GSM 03.38
# (GSM0338.TXT) reads it. 0x1B is the escape to the extension table, not a character.
# 0x09 is the capital Ç: the mapping says so, and a lower-case ç sent as 0x09 would
# arrive upper-case, so ç is not in the alphabet (it forces UCS-2).
_BASIC_BY_CODE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
BASIC: Mapping[str, int] = {
    ch: code for code, ch in enumerate(_BASIC_BY_CODE) if code != ESCAPE
}
"""Characters of the GSM 7-bit basic table and their septet codes (one septet each)."""

EXTENSION: Mapping[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
"""Characters of the basic extension table: sent as ESC (0x1B) + code, two septets."""

_GSM_CHARS = frozenset(BASIC) | frozenset(EXTENSION)


def encoding(text: str) -> Encoding:
    """``"gsm7"`` when every character of ``text`` is in the GSM alphabet, else ``"ucs2"``."""
    return GSM7 if _GSM_CHARS.issuperset(text) else UCS2


def non_gsm_characters(text: str) -> str:
    """The distinct characters of ``text`` that force UCS-2, in order of appearance.

    Empty when the text fits GSM 7-bit: handy to say *why* a template went UCS-2.
    """
    return "".join(dict.fromkeys(ch for ch in text if ch not in _GSM_CHARS))


def encode_gsm7(text: str) -> bytes:
    """The unpacked septets of ``text`` (one per byte, ESC pairs included).

    Its length is the septet count; gateways taking a GSM payload pack these 8 per 7
    octets themselves. Raises ``ValueError`` for a text that does not fit GSM 7-bit.
    """
    out = bytearray()
    for i, ch in enumerate(text):
        code = BASIC.get(ch)
        if code is not None:
            out.append(code)
        elif ch in EXTENSION:
            out += bytes((ESCAPE, EXTENSION[ch]))
        else:
            raise ValueError(f"character {i + 1} ({ch!r}, U+{ord(ch):04X}) is not in GSM 03.38")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Segmentation:
    """How a text is sent: its encoding and its parts, with their sizes.

    ``units`` are septets for ``gsm7`` and UTF-16 code units for ``ucs2``.
    """

    encoding: Encoding
    parts: tuple[str, ...]
    part_units: tuple[int, ...]

    @property
    def count(self) -> int:
        """How many SMS the text is sent as (what the operator is billed for)."""
        return len(self.parts)

    @property
    def units(self) -> int:
        """Septets (``gsm7``) or UTF-16 code units (``ucs2``) of the whole text."""
        return sum(self.part_units)

    @property
    def septets(self) -> int | None:
        """Septets of the whole text, or None when it is sent as UCS-2."""
        return self.units if self.encoding == GSM7 else None

    @property
    def limit(self) -> int:
        """The capacity of each part at this count: 160/70 alone, 153/67 concatenated."""
        single, part = _limits(self.encoding)
        return single if self.count == 1 else part

    @property
    def remaining(self) -> int:
        """Units still free in the last part before the text needs one more part.

        For a single part this is the room left before it splits (where the text is
        re-packed into 153/67-unit parts), e.g. 160 - 150 = 10 for 150 septets.
        """
        return self.limit - self.part_units[-1]


def _limits(enc: Encoding) -> tuple[int, int]:
    return (SINGLE_SEPTETS, PART_SEPTETS) if enc == GSM7 else (SINGLE_UNITS, PART_UNITS)


def _costs(text: str, enc: Encoding) -> list[int]:
    if enc == GSM7:
        return [2 if ch in EXTENSION else 1 for ch in text]
    costs = []
    for i, ch in enumerate(text):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            # A lone surrogate has no UTF-16 encoding: the text is broken upstream.
            raise ValueError(f"character {i + 1} is a lone surrogate (U+{code:04X})")
        costs.append(2 if code > 0xFFFF else 1)
    return costs


def describe(text: str) -> Segmentation:
    """Choose the encoding of ``text`` and split it into SMS parts.

    A text within 160 septets / 70 units is one part. A longer one is packed greedily
    into parts of at most 153 septets / 67 units, a two-unit character (ESC pair,
    surrogate pair) moving whole to the next part when only one unit is left. The
    parts joined give ``text`` back. The empty text is one empty part.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    enc = encoding(text)
    costs = _costs(text, enc)
    single, part = _limits(enc)
    total = sum(costs)
    if total <= single:
        return Segmentation(enc, (text,), (total,))
    parts: list[str] = []
    units: list[int] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > part:
            parts.append(text[start:i])
            units.append(used)
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    units.append(used)
    return Segmentation(enc, tuple(parts), tuple(units))


def segments(text: str) -> list[str]:
    """The parts ``text`` is sent as (see :func:`describe`)."""
    return list(describe(text).parts)


def segment_count(text: str) -> int:
    """How many SMS ``text`` is sent as (see :func:`describe`)."""
    return describe(text).count
