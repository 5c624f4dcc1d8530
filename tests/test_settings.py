"""Settings as ``invoicer config`` prints them: secrets masked, URLs as they were written."""

from __future__ import annotations

import pytest

from invoicer.settings import Settings, mask_url, masked


@pytest.mark.parametrize(("url", "shown"), [
    ("sqlite:///var/ledger.db", "sqlite:///var/ledger.db"),  # relative: three slashes
    ("sqlite:////srv/ledger.db", "sqlite:////srv/ledger.db"),  # absolute: four
    ("file://var/archive", "file://var/archive"),
    ("file:///srv/archive", "file:///srv/archive"),
    ("file:rel", "file:rel"),
    ("postgresql://billing:s3cret@db:5432/ledger", "postgresql://billing:***@db:5432/ledger"),
    ("https://:tok@sms.example/v1?token=t&account=a",
     "https://:***@sms.example/v1?token=***&account=a"),
    ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
    ("s3://bucket/p?endpoint=http://127.0.0.1:9000", "s3://bucket/p?endpoint=http://127.0.0.1:9000"),
    # Class (issue 13): a credential shown in clear. A bare token in the user part,
    # a user without password, secret-looking parameters under other names.
    ("https://Zm9vYmFyLXRva2Vu@gateway.example/send", "https://***@gateway.example/send"),
    ("postgresql://billing@db/ledger", "postgresql://***@db/ledger"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("https://gw.example/v1?apikey=A&auth=B&sig=C&x-session=D&to=+55",
     "https://gw.example/v1?apikey=***&auth=***&sig=***&x-session=***&to=+55"),
])
def test_urls_are_shown_as_written_with_secrets_masked(url, shown):
    assert mask_url(url) == shown


def test_secret_settings_are_never_shown():
    shown = masked(Settings(link_secret="hush", sms_token="tok-123"))
    assert shown["link_secret"] == shown["sms_token"] == "***"
    unset = masked(Settings(link_secret="", sms_token=""))
    assert unset["link_secret"] == "(generated, var/link-secret)" and unset["sms_token"] == "(none)"
    rotating = masked(Settings(link_secret="n" * 32 + "," + "o" * 32))
    assert "n" * 32 not in rotating["link_secret"] and "rotation" in rotating["link_secret"]


@pytest.mark.parametrize(("name", "value"), [
    ("callback_token", "too-short"), ("fallback", "email"), ("fallback", "sms,sms"),
    ("fallback", ""), ("fallback_operators", '{"oi": "fax"}'),
])
def test_a_weak_callback_token_or_a_bad_fallback_policy_is_refused_at_start(
        monkeypatch, name, value):
    from invoicer import backends

    monkeypatch.setenv(f"INVOICER_{name.upper()}", value)
    with pytest.raises(ValueError):
        backends.fallback_policy(Settings())


def test_the_fallback_policy_per_operator(monkeypatch):
    from invoicer import backends

    monkeypatch.setenv("INVOICER_FALLBACK_OPERATORS", '{"oi": "print", "tim": "none"}')
    policy = backends.fallback_policy(Settings())
    assert (policy.steps("oi"), policy.steps("tim"), policy.steps("vivo")) == (
        ("print",), (), ("sms", "print"))


def test_a_run_uses_a_process_per_core_plus_one_only_when_it_waits_on_the_network(
        monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    local = {"archive_url": "file://var/archive", "db_url": "sqlite:///var/ledger.db",
             "mail_url": "file://var/outbox", "sms_url": "file://var/sms"}
    assert Settings(**local).effective_workers() == 4
    for key, remote in (("archive_url", "s3://bucket/invoices"),
                        ("db_url", "postgresql+psycopg://127.0.0.1/test"),
                        ("mail_url", "smtp://127.0.0.1:25"),
                        ("sms_url", "https://gateway.example/send")):
        assert Settings(**{**local, key: remote}).effective_workers() == 5, key
    assert Settings(**local, workers=7).effective_workers() == 7
    assert Settings(**{**local, "db_url": "postgresql+psycopg://h/db"},
                    workers=1).effective_workers() == 1
