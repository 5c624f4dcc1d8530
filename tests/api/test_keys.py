"""API keys: made once, stored hashed, checked in constant time, revocable; the CLI;
and the OpenAPI document kept in the repository.

The ledger half runs on SQLite and PostgreSQL (the ``led`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from invoicer.api import create_app
from invoicer.api.keys import TOKEN_RE, authenticate, create_key, hash_token
from invoicer.api.openapi import OPENAPI_PATH, openapi_text
from invoicer.ledger import Ledger
from invoicer.ledger.schema import api_keys
from invoicer.settings import Settings
from tests.api.conftest import LiveServer


def test_a_key_is_stored_hashed_and_its_token_shown_once(led):
    issued = create_key(led, role="print_shop", operators=["oi", "vivo", "oi"],
                        name="Gráfica Rio")
    assert TOKEN_RE.fullmatch(issued.token)
    assert issued.key.operators == ("oi", "vivo") and issued.key.role == "print_shop"
    with led.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    stored = json.dumps([str(v) for v in row])
    secret = issued.token.split("_", 2)[2]
    assert secret not in stored and issued.token not in stored
    assert row.secret_sha256 == hash_token(issued.token)
    assert issued.token.startswith(f"ik_{row.prefix}_")
    assert authenticate(led, issued.token) == issued.key


def test_wrong_and_revoked_tokens_authenticate_nobody(led):
    issued = create_key(led, role="print_shop", operators=["oi"], name="shop")
    other = create_key(led, role="print_shop", operators=["oi"], name="other")
    token = issued.token
    # Another key's secret under this prefix, a changed character, no token at all.
    spliced = token[:14] + other.token[14:]
    for bad in (spliced, token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", "",
                None, "ik_0000000000_" + "A" * 43, token.upper(), f" {token}"):
        assert authenticate(led, bad) is None, bad
    store = led.api_keys
    assert store.revoke(issued.key.id) is True
    assert store.revoke(issued.key.id) is False  # again: a no-op
    assert authenticate(led, token) is None
    assert authenticate(led, other.token) == other.key
    assert store.get(issued.key.id).revoked_at is not None
    with pytest.raises(LookupError):
        store.revoke(10**9)


@pytest.mark.parametrize(("role", "operators", "name"), [
    ("printer", ["oi"], "x"), ("print_shop", [], "x"), ("print_shop", ["../etc"], "x"),
    ("print_shop", ["oi"], ""), ("print_shop", ["oi"], "line\nbreak"),
    ("print_shop", ["a b"], "x"),
])
def test_bad_keys_are_refused(led, role, operators, name):
    with pytest.raises(ValueError):
        create_key(led, role=role, operators=operators, name=name)
    assert led.api_keys.all() == []


def test_a_taken_prefix_is_not_overwritten(led):
    store = led.api_keys
    first = store.add(prefix="0123456789", secret_sha256="a" * 64, name="one",
                      role="operations", operators=["oi"])
    assert first is not None
    assert store.add(prefix="0123456789", secret_sha256="b" * 64, name="two",
                     role="billing", operators=["oi"]) is None
    assert store.by_prefix("0123456789") == first


def test_cli_keys_create_list_revoke(tmp_path, monkeypatch):
    from invoicer.cli import app
    from invoicer.settings import get_settings

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("INVOICER_DB_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(app, ["keys", "create", "--role", "print_shop", "--operator",
                                   "oi", "--operator", "vivo", "--name", "[bold]Shop"])
        assert made.exit_code == 0, made.output
        token = made.stdout.strip().splitlines()[-1]
        assert TOKEN_RE.fullmatch(token)
        with Ledger.from_url(url) as ledger:
            key = authenticate(ledger, token)
            assert key is not None and key.operators == ("oi", "vivo")
            assert key.name == "[bold]Shop"
        listed = runner.invoke(app, ["keys", "list"])
        assert listed.exit_code == 0 and "[bold]Shop" in listed.output
        assert token not in listed.output and token.split("_", 2)[2] not in listed.output
        bad = runner.invoke(app, ["keys", "create", "--role", "nobody", "--operator", "oi",
                                  "--name", "x"])
        assert bad.exit_code != 0 and "unknown role" in bad.output
        revoked = runner.invoke(app, ["keys", "revoke", str(key.id)])
        assert revoked.exit_code == 0 and "revoked" in revoked.output
        again = runner.invoke(app, ["keys", "revoke", str(key.id)])
        assert again.exit_code == 0 and "already" in again.output
        assert runner.invoke(app, ["keys", "revoke", "999"]).exit_code == 2
        with Ledger.from_url(url) as ledger:
            assert authenticate(ledger, token) is None
    finally:
        get_settings.cache_clear()


def test_the_openapi_file_is_the_served_document(tmp_path):
    """``schema/openapi.json`` is what ``/openapi.json`` serves; after an API change
    run ``invoicer openapi -o schema/openapi.json``."""
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = create_app(Settings(archive_url=f"file://{tmp_path / 'archive'}"), ledger=ledger)
    import httpx

    with LiveServer(app) as server:
        served = httpx.get(f"{server.url}/openapi.json").json()
    ledger.close()
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_text(), (
        "schema/openapi.json is stale: run `invoicer openapi -o schema/openapi.json`")
    assert served == json.loads(openapi_text())
    paths = served["paths"]
    assert set(paths) >= {"/v1/print-shop/batches", "/v1/print-shop/batches/{batch}/ack",
                          "/v1/print-shop/batches/{batch}/pdf"}
    assert paths["/v1/print-shop/batches/{batch}/ack"]["post"]["responses"]["409"][
        "content"] == {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/ProblemBody"}}}
