"""Synthetic e-invoice business records (``billing-record/1.1``) for tests and benchmarks.

:func:`as_einvoice` turns a synthetic business record of an EU profile into one asking
for a structured invoice: Dutch records for Factur-X, XRechnung (CII or UBL) or Peppol
BIS 3, Romanian ones for RO_CIUS. It adds what each format needs (VAT identifiers,
electronic addresses, a buyer reference, VAT categories, a SEPA mandate for direct
debit) from the same ``random.Random``, so a run stays reproducible. Charges that carry
no tax in the record (third-party services) are put under an exempt tax line (category
``E``, rate 0), since every line of an e-invoice must name its VAT category.
"""

from __future__ import annotations

import random
from typing import Any

from invoicer.billing.paycodes import epc

__all__ = ["COUNTRIES", "as_einvoice"]

#: Profiles (by country) whose business records may ask for an e-invoice.
COUNTRIES = frozenset({"NL", "RO"})

_SELLER = {
    "NL": {"vat_id": "NL859176342B01", "peppol": {"scheme": "0106", "id": "24301234"},
           "email": "facturen@poldertelecom.example"},
    "RO": {"vat_id": "RO14399840", "peppol": None, "email": "efactura@carpati-telecom.example"},
}
_EXEMPT = {"code": "EXEMPT", "rate": "0", "category": "E",
           "exemption_reason": "Third-party service collected on behalf of the provider",
           "exemption_code": "VATEX-EU-79-C"}


def _gln(rng: random.Random) -> str:
    """A GLN (EAS 0088) with its GS1 check digit."""
    body = f"{rng.randrange(10**11, 10**12):012d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def as_einvoice(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``record`` (a business record of a :data:`COUNTRIES` profile) as 1.1 with an
    e-invoice; changed in place and returned."""
    country = record["operator"]["address"]["country"]
    seller = _SELLER[country]
    fmt = ("ro-cius" if country == "RO" else
           rng.choice(("factur-x", "xrechnung-cii", "xrechnung-ubl", "peppol-bis3")))
    record["schema"] = "billing-record/1.1"
    operator = record["operator"]
    operator["vat_id"] = seller["vat_id"]
    account = record["account"]["number"]
    customer = record["account"]["customer"]
    customer["vat_id"] = (f"NL{rng.randrange(10**8, 10**9)}B{rng.randrange(1, 100):02d}"
                          if country == "NL" else f"RO{rng.randrange(10**6, 10**9)}")
    einvoice: dict[str, Any] = {"format": fmt}
    if fmt.startswith("xrechnung"):
        operator["endpoint"] = {"scheme": "EM", "id": seller["email"]}
        einvoice["buyer_reference"] = f"991-{rng.randrange(10**5, 10**6)}-{account[-2:]}"
        einvoice["endpoint"] = {"scheme": "EM", "id": f"einvoice.{account}@example.net"}
    elif fmt == "peppol-bis3":
        operator["endpoint"] = dict(seller["peppol"])
        einvoice["buyer_reference"] = f"PO-{rng.randrange(10**6, 10**7)}"
        einvoice["endpoint"] = {"scheme": "0088", "id": _gln(rng)}
    record["delivery"]["einvoice"] = einvoice

    for tax in record["taxes"]:
        tax["category"] = "S"
    untaxed = [c for s in record["services"] for c in s["charges"] if "tax" not in c]
    if untaxed:
        base = sum(int(c["amount"].replace(".", "")) for c in untaxed)
        digits = len(untaxed[0]["amount"].partition(".")[2])
        whole, frac = divmod(abs(base), 10**digits)
        text = f"{'-' if base < 0 else ''}{whole}.{frac:0{digits}d}" if digits else str(base)
        zero = "0." + "0" * digits if digits else "0"
        for c in untaxed:
            c["tax"] = _EXEMPT["code"]
        record["taxes"].append({**_EXEMPT, "base": text, "amount": zero})
    if record["payment"]["method"] == "direct_debit":
        record["payment"]["debit"] = {
            "mandate": f"MNDT-{account}", "creditor_id": "NL98ZZZ999999990000",
            "iban": epc.make_iban("NL", f"RABO{rng.randrange(10**9, 10**10):010d}")}
    return record
