"""The one error type of the billing-record contract.

A billing engineer reading a rejection must be able to find the record and the field
without opening our code, so every error carries the line number, the invoice number
(where it could be read), the field path in the record's own vocabulary
(``services[3].usage[120].duration_s``) and a plain sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing wrong with a record: where (field path) and what (a sentence)."""

    path: str
    message: str
    reason: str = "invalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RecordError(ValueError):
    """A billing record was rejected.

    ``issues`` lists every problem found (at least one); ``path``, ``message`` and
    ``reason`` are those of the first, which is what summaries group by.
    """

    def __init__(
        self,
        issues: Sequence[Issue] | Issue,
        *,
        line: int | None = None,
        invoice_number: str | None = None,
    ) -> None:
        self.issues: tuple[Issue, ...] = (
            (issues,) if isinstance(issues, Issue) else tuple(issues)
        )
        if not self.issues:
            raise ValueError("RecordError needs at least one issue")
        self.line = line
        self.invoice_number = invoice_number
        super().__init__(str(self))

    @property
    def path(self) -> str:
        return self.issues[0].path

    @property
    def message(self) -> str:
        return self.issues[0].message

    @property
    def reason(self) -> str:
        return self.issues[0].reason

    def where(self) -> str:
        """``line 12, invoice OI-1`` style location, as far as it is known."""
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.invoice_number:
            parts.append(f"invoice {self.invoice_number}")
        return ", ".join(parts) or "record"

    def __str__(self) -> str:
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        return f"{self.where()}: {self.issues[0]}{more}"

    def with_location(self, *, line: int | None, invoice_number: str | None) -> RecordError:
        """The same issues, located in a file."""
        return RecordError(
            self.issues,
            line=line if line is not None else self.line,
            invoice_number=invoice_number or self.invoice_number,
        )

    def to_dict(self) -> dict:
        """JSON-ready form, as written to dead-letter files and the ledger: every string
        a valid Unicode scalar sequence without NUL (a lone surrogate or a NUL quoted
        from a hostile record is escaped), so any file or database can store it."""
        return {
            "line": self.line,
            "invoice_number": _storable(self.invoice_number),
            "reason": self.reason,
            "path": _storable(self.path),
            "message": _storable(self.message),
            "issues": [
                {"path": _storable(i.path), "message": _storable(i.message),
                 "reason": i.reason} for i in self.issues
            ],
        }


def _storable(text: str | None) -> str | None:
    """``text`` with lone surrogates and NUL escaped (``\\ud800``, ``\\x00``)."""
    if text is None or (text.isascii() and "\x00" not in text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def format_path(loc: Iterable[str | int]) -> str:
    """``('services', 3, 'usage', 120, 'duration_s')`` -> ``services[3].usage[120].duration_s``."""
    out: list[str] = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(("." if out else "") + part)
    return "".join(out)
