"""Generic payment references printed as Code 128 with the text underneath.

Code 128 can encode all of ASCII, but the reference is also printed for people to type
into a bank form, so only printable ASCII (space to ``~``) is accepted: no control
characters, no accented letters (which Code 128 cannot carry anyway).
"""

from __future__ import annotations

import re

from invoicer.billing.paycodes import PaymentCodeError

# Why 48: in code set B every character is one 11-module symbol, and a symbol of N
# characters is 11 * N + 35 modules (start, check and stop included) plus two 10-module
# quiet zones: 583 modules for 48 characters. At a 0.25 mm module (comfortably above the
# ~0.19 mm that laser-printed Code 128 needs for reliable scanning) that is about 146 mm,
# inside the ~180 mm text width of an A4 page with 15 mm margins, with the human-readable
# line under it still legible at 9 pt.
MAX_LENGTH = 48

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


def validate(code: str) -> None:
    """Check that ``code`` is 1 to :data:`MAX_LENGTH` printable ASCII characters."""
    if not isinstance(code, str) or not code:
        raise PaymentCodeError("code", "a Code 128 payment reference cannot be empty")
    if not _PRINTABLE_ASCII.fullmatch(code):
        position, ch = next((i, c) for i, c in enumerate(code) if not " " <= c <= "~")
        raise PaymentCodeError(
            "code",
            f"a Code 128 payment reference is printable ASCII only (space to ~), but character "
            f"{position + 1} is {ch!r} (U+{ord(ch):04X})",
        )
    if len(code) > MAX_LENGTH:
        raise PaymentCodeError(
            "code",
            f"a Code 128 payment reference is at most {MAX_LENGTH} characters to print legibly "
            f"across an A4 page, but this one has {len(code)}",
        )
