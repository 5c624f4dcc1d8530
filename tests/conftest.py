"""Shared fixtures: the spec's example record and a helper to break it one field at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# The example of shared/spec/billing-record.md, verbatim.
SPEC_EXAMPLE = json.loads(r"""
{
  "schema": "billing-record/1",
  "invoice": {
    "number": "OI-2026-11-0000123",
    "kind": "original",
    "issue_date": "2026-11-05",
    "due_date": "2026-11-20",
    "period": {"start": "2026-10-01", "end": "2026-10-31"},
    "currency": "BRL",
    "locale": "pt_BR"
  },
  "operator": {
    "id": "oi",
    "name": "Oi S.A.",
    "tax_id": "76.535.764/0001-43",
    "address": {"lines": ["Rua Humberto de Campos, 425"], "postal_code": "22430-190",
                "city": "Rio de Janeiro", "country": "BR"},
    "support": {"phone": "*144", "web": "https://www.oi.com.br"}
  },
  "account": {
    "number": "1234567890",
    "segment": "consumer",
    "customer": {
      "name": "Maria da Conceição Souza",
      "tax_id": "123.456.789-09",
      "address": {"lines": ["Av. Atlântica, 1702", "Apto 501"], "postal_code": "22021-001",
                  "city": "Rio de Janeiro", "country": "BR"}
    }
  },
  "delivery": {
    "mode": "electronic",
    "email": "maria@example.com",
    "phone": "+5521987654321",
    "sms_notice": true,
    "attach_pdf": true
  },
  "balance": {
    "previous": "120.50",
    "payments": [{"date": "2026-10-18", "amount": "120.50", "method": "barcode"}],
    "adjustments": [{"date": "2026-10-20", "description": "Promised payment fee", "amount": "1.00"}]
  },
  "services": [
    {
      "id": "+5521987654321",
      "label": "Oi Mobile — Plano Controle 20GB",
      "charges": [
        {"code": "SUB", "description": "Monthly subscription", "category": "subscription",
         "quantity": "1", "amount": "59.90", "tax": "ICMS"},
        {"code": "LDI", "description": "International calls", "category": "international",
         "quantity": "14", "unit": "min", "amount": "23.10", "tax": "ICMS"}
      ],
      "usage": [
        {"start": "2026-10-03T14:22:05-03:00", "type": "local", "called": "+552133334444",
         "destination": "Rio de Janeiro", "duration_s": 125, "amount": "0.00"},
        {"start": "2026-10-04T09:01:00-03:00", "type": "sms", "called": "+5511999998888",
         "destination": "São Paulo", "amount": "0.25"},
        {"start": "2026-10-04T10:00:00-03:00", "type": "data", "volume_kb": 524288,
         "destination": "Internet", "amount": "0.00"}
      ]
    }
  ],
  "taxes": [{"code": "ICMS", "rate": "0.25", "base": "83.00", "amount": "20.75"}],
  "totals": {"charges": "83.00", "taxes": "20.75", "adjustments": "1.00",
             "total_due": "104.75"},
  "payment": {
    "method": "barcode",
    "scheme": "febraban",
    "code": "84680000001047501080000001234567890202611200"
  },
  "history": [{"period": "2026-09", "amount": "118.20"}, {"period": "2026-10", "amount": "120.50"}]
}
""")


@pytest.fixture
def record() -> dict:
    """A fresh, mutable copy of the spec's example record."""
    return copy.deepcopy(SPEC_EXAMPLE)
