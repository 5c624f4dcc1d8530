"""Billing record -> EN 16931 structured invoice (CII D16B or UBL 2.1), verified.

:func:`build` is pure like the PDF renderer: no network, no clock, no database; the same
record gives the same bytes. It returns ``None`` for a record that asks for no
e-invoice, and raises :class:`EInvoiceError` when the generated XML fails its XML Schema
(the caller fails the record with that reason: nothing unverified is archived or sent).

========================  ======  ===================================================
``delivery.einvoice``     syntax  specification identifier (BT-24)
========================  ======  ===================================================
``factur-x``              CII     ``urn:cen.eu:en16931:2017`` (profile EN 16931),
                                  embedded in the PDF/A-3 as ``factur-x.xml``
``xrechnung-cii``         CII     ``…#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0``
``xrechnung-ubl``         UBL     idem
``peppol-bis3``           UBL     ``…#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0``
``ro-cius``               UBL     ``…#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1``
========================  ======  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from invoicer.billing.models import BillingRecord
from invoicer.renderer.einvoice import cii, ubl, xsd
from invoicer.renderer.einvoice.model import build_document

__all__ = ["FORMATS", "EInvoiceError", "EInvoiceXml", "Format", "build"]

_EN16931 = "urn:cen.eu:en16931:2017"
_PEPPOL_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


@dataclass(frozen=True, slots=True)
class Format:
    """How one ``delivery.einvoice.format`` is written."""

    syntax: str  # "cii" or "ubl"
    specification: str  # BT-24
    process: str | None  # BT-23
    embedded: bool  # True: travels inside the PDF (Factur-X), else beside it


FORMATS: dict[str, Format] = {
    "factur-x": Format("cii", _EN16931, None, True),
    "xrechnung-cii": Format("cii", f"{_EN16931}#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
                            _PEPPOL_PROCESS, False),
    "xrechnung-ubl": Format("ubl", f"{_EN16931}#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
                            _PEPPOL_PROCESS, False),
    "peppol-bis3": Format(
        "ubl", f"{_EN16931}#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0",
        _PEPPOL_PROCESS, False),
    "ro-cius": Format("ubl", f"{_EN16931}#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1",
                      None, False),
}


class EInvoiceError(ValueError):
    """The structured invoice could not be produced valid; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class EInvoiceXml:
    """A verified structured invoice.

    ``filename`` is what it is called inside the PDF (``factur-x.xml``) or in an e-mail;
    archived beside the PDF it takes the PDF's key with ``.xml``. ``embedded`` says
    whether the PDF carries it (Factur-X) or it travels as its own file.
    """

    format: str
    syntax: str
    xml: bytes
    embedded: bool

    media_type = "application/xml"

    @property
    def filename(self) -> str:
        return "factur-x.xml" if self.embedded else f"{self.format}.xml"


def build(record: BillingRecord, *, verify: bool = True) -> EInvoiceXml | None:
    """The structured invoice ``record`` asks for (``None`` if none), XSD-checked.

    ``verify=False`` skips the XML Schema check: for benchmarks that measure it apart,
    never for anything that is archived or sent.
    """
    einvoice = record.delivery.einvoice
    if einvoice is None:
        return None
    fmt = FORMATS[einvoice.format.value]
    doc = build_document(record)
    if fmt.syntax == "cii":
        xml = cii.write(doc, fmt.specification, fmt.process)
    else:
        xml = ubl.write(doc, fmt.specification, fmt.process)
    if verify:
        try:
            xsd.check(xml, fmt.syntax)
        except xsd.SchemaError as exc:
            raise EInvoiceError(f"{einvoice.format.value} invoice {record.invoice.number}: "
                                f"{exc}") from None
    return EInvoiceXml(einvoice.format.value, fmt.syntax, xml, fmt.embedded)
