"""The published JSON Schema stays the one the models produce."""

from __future__ import annotations

import json

from invoicer.billing.schema import SCHEMA_FILE, json_schema, json_schema_text


def test_repository_copy_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "schema/billing-record-1.schema.json is stale: run "
        "`invoicer schema -o schema/billing-record-1.schema.json`"
    )


def test_schema_describes_the_contract():
    schema = json_schema()
    assert schema["title"] == "billing-record/1"
    assert "schema" in schema["properties"]
    assert set(schema["required"]) >= {"schema", "invoice", "operator", "account", "delivery",
                                       "balance", "services", "totals", "payment"}
    money = schema["$defs"]["Totals"]["properties"]["total_due"]
    assert money["type"] == "string" and "pattern" in money
    categories = schema["$defs"]["ChargeCategory"]["enum"]
    assert "long_distance" in categories and len(categories) == 13
    json.dumps(schema)  # serialisable as is
