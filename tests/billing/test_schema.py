"""The published JSON Schema stays the one the models produce."""

from __future__ import annotations

import json

from invoicer.billing.schema import SCHEMA_FILE, SCHEMA_FILE_1, json_schema, json_schema_text


def test_repository_copy_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "schema/billing-record-1.1.schema.json is stale: run "
        "`invoicer schema -o schema/billing-record-1.1.schema.json`"
    )


def test_version_1_schema_stays_published_and_1_1_extends_it():
    old = json.loads(SCHEMA_FILE_1.read_text(encoding="utf-8"))
    new = json_schema()
    assert old["title"] == "billing-record/1"
    assert new["properties"]["schema"]["enum"] == ["billing-record/1", "billing-record/1.1"]
    # Only additions: every definition and property of 1.0 is still there.
    for name, definition in old["$defs"].items():
        assert set(definition.get("properties", {})) <= set(
            new["$defs"][name].get("properties", {})), name
    assert set(old["required"]) == set(new["required"])


def test_schema_describes_the_contract():
    schema = json_schema()
    assert schema["title"] == "billing-record/1.1"
    assert "schema" in schema["properties"]
    assert set(schema["$defs"]["EInvoiceFormat"]["enum"]) == {
        "factur-x", "xrechnung-cii", "xrechnung-ubl", "peppol-bis3", "ro-cius"}
    assert set(schema["required"]) >= {"schema", "invoice", "operator", "account", "delivery",
                                       "balance", "services", "totals", "payment"}
    money = schema["$defs"]["Totals"]["properties"]["total_due"]
    assert money["type"] == "string" and "pattern" in money
    categories = schema["$defs"]["ChargeCategory"]["enum"]
    assert "long_distance" in categories and len(categories) == 13
    json.dumps(schema)  # serialisable as is
