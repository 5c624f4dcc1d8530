"""Backends from the settings, built in one place: what each ``INVOICER_*`` URL opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoicer import backends
from invoicer.delivery.archive import FileArchive
from invoicer.delivery.email import FileMailer, SmtpMailer
from invoicer.delivery.sms import FileSmsOutbox, HttpSmsGateway, MemorySmsGateway
from invoicer.settings import Settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("INVOICER_SMS_URL", "INVOICER_SMS_TOKEN", "INVOICER_LINK_SECRET",
                 "INVOICER_MAIL_URL", "INVOICER_ARCHIVE_URL", "INVOICER_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_embedded_defaults_are_local_folders(env, tmp_path):
    settings = Settings()
    assert isinstance(backends.archive(settings), FileArchive)
    assert backends.archive(settings).root == tmp_path / "var" / "archive"
    assert backends.mailer(settings).root == tmp_path / "var" / "outbox"
    assert isinstance(backends.mailer(settings), FileMailer)
    sms = backends.sms_gateway(settings)
    assert isinstance(sms, FileSmsOutbox) and sms.root == Path("var/sms")


def test_sms_url_and_token_come_from_the_environment(env):
    env.setenv("INVOICER_SMS_URL", "memory://")
    assert isinstance(backends.sms_gateway(Settings()), MemorySmsGateway)
    env.setenv("INVOICER_SMS_URL", "https://sms.example.com/send")
    with pytest.raises(ValueError, match="needs a token"):
        backends.sms_gateway(Settings())
    env.setenv("INVOICER_SMS_TOKEN", "from-env")
    gateway = backends.sms_gateway(Settings())
    assert isinstance(gateway, HttpSmsGateway) and gateway.token == "from-env"
    env.setenv("INVOICER_SMS_URL", "https://:in-url@sms.example.com/send")
    assert backends.sms_gateway(Settings()).token == "in-url"  # the URL's wins


def test_the_link_secret_is_set_or_made_once(env, tmp_path):
    (made,) = backends.link_secret(Settings())
    assert len(made) == 32 and (tmp_path / "var" / "link-secret").read_bytes() == made
    assert backends.link_secret(Settings()) == (made,)
    env.setenv("INVOICER_LINK_SECRET", "shared-by-every-machine-" + "x" * 16)
    assert backends.link_secret(Settings()) == (b"shared-by-every-machine-" + b"x" * 16,)


def test_services_with_and_without_delivery(env, tmp_path):
    settings = Settings(mail_url="smtp://relay.internal:2525?concurrency=2",
                        sms_url="memory://", public_url="https://bills.example",
                        mail_from="faturas@oi.example", max_attachment_mb=0.5)
    archive_only = backends.services(settings, deliver=False)
    try:
        assert archive_only.channels is None
        assert (tmp_path / "var" / "archive").is_dir()  # made for a fresh checkout
    finally:
        archive_only.close()
    services = backends.services(settings)
    try:
        channels = services.channels
        assert isinstance(channels.mailer, SmtpMailer) and channels.mailer.concurrency == 2
        assert isinstance(channels.sms, MemorySmsGateway)
        assert (channels.public_url, channels.sender, channels.max_attachment) == (
            "https://bills.example", "faturas@oi.example", 512 * 1024)
        assert channels.link_secret == backends.link_secret(settings)
        assert channels.retry(lambda: "done") == "done"
    finally:
        services.close()
