"""JSON Schema of ``billing-record/1.1``, published from the models.

The models are the source of truth; ``schema/billing-record-1.1.schema.json`` is a copy
for billing systems that validate before sending, kept current by a test. Version 1.1
only adds optional fields, so a version-1 record is valid against it too (its ``schema``
property takes both values). ``schema/billing-record-1.schema.json`` is the version-1
schema as it was published, kept unchanged for billing systems that pinned it.
"""

from __future__ import annotations

import json

from invoicer.billing.models import SCHEMA_VERSION_1_1, BillingRecord
from invoicer.resources import package_path

SCHEMA_FILE = package_path("schema", "billing-record-1.1.schema.json")
#: The version-1 schema as published before 1.1; frozen, never regenerated.
SCHEMA_FILE_1 = package_path("schema", "billing-record-1.schema.json")


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a billing record."""
    schema = BillingRecord.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://invoicer.dev/schema/billing-record-1.1.schema.json",
        "title": SCHEMA_VERSION_1_1,
        "description": "One billing record per invoice, as JSON (one object per line in "
        "JSON Lines for a bill run). Money amounts are strings. Cross-field rules "
        "(reconciliation, tax lines, payment codes, what an e-invoice format needs) are "
        "checked by the service beyond this schema.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def json_schema_text() -> str:
    """The schema as the stable text written to the repository copy."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
