"""Every backend the settings name, built here and nowhere else.

The entry points (``invoicer`` commands, the bill run's process pool, the Celery
workers, the HTTP API) get their collaborators from these functions; below them, code
takes ready collaborators and never reads settings (``S3Archive(client, bucket,
prefix)``, ``Channels(mailer=..., sms=...)``). A URL picks each backend (see
``docs/settings.md``); how a URL becomes a backend is the transport's own business
(``archive_from_url``, ``mailer_from_url``, ``gateway_from_url``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from invoicer.delivery.archive import Archive, archive_from_url
from invoicer.delivery.bounces import Verp
from invoicer.delivery.email import Mailer, mailer_from_url
from invoicer.delivery.links import local_secret, parse_secrets
from invoicer.delivery.retry import Backoff, retry
from invoicer.delivery.sms import SmsGateway, gateway_from_url
from invoicer.delivery.webhooks import HttpxPoster, WebhookPoster
from invoicer.ledger import Ledger
from invoicer.pipeline import Services
from invoicer.renderer import RenderOptions
from invoicer.runs.broker import Broker
from invoicer.settings import Settings
from invoicer.workflows.bounces import Intake
from invoicer.workflows.dispatch import Channels
from invoicer.workflows.fallback import Policy
from invoicer.workflows.webhooks import Backoff as WebhookBackoff

__all__ = [
    "INLINE_BACKOFF",
    "archive",
    "broker",
    "channels",
    "fallback_policy",
    "intake",
    "ledger",
    "link_secret",
    "mailer",
    "readiness_checks",
    "render_options",
    "services",
    "sms_gateway",
    "verp",
    "webhook_backoff",
    "webhook_poster",
]

#: In-line retries of a delivery: a few quick tries (a 4xx, a blip); a longer outage is
#: the next run's or the reconciler's job, not a worker's to wait out.
INLINE_BACKOFF = Backoff(attempts=4, base=0.25, factor=2.0, cap=2.0)

#: Where the embedded default keeps the links' secret when none is set.
LOCAL_LINK_SECRET = Path("var") / "link-secret"


def ledger(settings: Settings) -> Ledger:
    """The ledger ``INVOICER_DB_URL`` names (not migrated: the caller decides)."""
    return Ledger.from_url(settings.db_url)


def archive(settings: Settings) -> Archive:
    """The archive ``INVOICER_ARCHIVE_URL`` names."""
    return archive_from_url(settings.archive_url)


def broker(settings: Settings) -> Broker:
    """A client of the task queue ``INVOICER_BROKER_URL`` names: sends tasks to the
    Celery workers (``invoicer enqueue``, the API's Celery queue, the reconciler)."""
    return Broker.from_settings(settings)


def mailer(settings: Settings) -> Mailer:
    """The mailer ``INVOICER_MAIL_URL`` names."""
    return mailer_from_url(settings.mail_url)


def sms_gateway(settings: Settings) -> SmsGateway:
    """The SMS gateway ``INVOICER_SMS_URL`` names (token: ``INVOICER_SMS_TOKEN`` when
    the URL has none)."""
    return gateway_from_url(settings.sms_url, token=settings.sms_token or None)


def webhook_poster(settings: Settings) -> WebhookPoster:
    """What webhooks are POSTed with: httpx, ``INVOICER_WEBHOOK_TIMEOUT`` per phase."""
    return HttpxPoster.with_timeout(settings.webhook_timeout)


def webhook_backoff(settings: Settings) -> WebhookBackoff:
    """The wait between attempts at one webhook (``INVOICER_WEBHOOK_BACKOFF[_MAX]``)."""
    return WebhookBackoff(base=settings.webhook_backoff, cap=settings.webhook_backoff_max)


def readiness_checks(settings: Settings, ledger: Ledger, archive: Archive
                     ) -> dict[str, Callable[[], object]]:
    """What ``/readyz`` asks: the ledger answers, the archive answers (a lookup of a key
    that is never there: "not found" is an answer), and the broker accepts a
    connection when the API sends bill runs to the workers
    (``INVOICER_API_BILL_RUNS=celery``; in ``thread`` mode it does not need one)."""
    checks: dict[str, Callable[[], object]] = {
        "ledger": ledger.ping,
        "archive": lambda: archive.exists("readyz/probe"),
    }
    if settings.api_bill_runs == "celery":
        checks["broker"] = lambda: broker(settings).ping()
    return checks


def link_secret(settings: Settings) -> tuple[bytes, ...]:
    """The keys signed links are made and checked with: ``INVOICER_LINK_SECRET`` (one
    secret, or ``new,old`` during a rotation: the first signs, all verify), else one
    made once and kept in ``var/link-secret`` (enough for one machine). Each at least
    32 bytes, else :class:`~invoicer.delivery.links.WeakSecretError`."""
    if settings.link_secret:
        return parse_secrets(settings.link_secret, "INVOICER_LINK_SECRET")
    return (local_secret(LOCAL_LINK_SECRET),)


def verp(settings: Settings) -> Verp | None:
    """Return paths per delivery, when ``INVOICER_BOUNCE_DOMAIN`` is set (signed with
    the links' secret)."""
    if not settings.bounce_domain:
        return None
    return Verp(link_secret(settings), settings.bounce_domain, settings.bounce_local)


def fallback_policy(settings: Settings) -> Policy:
    """``INVOICER_FALLBACK`` and ``INVOICER_FALLBACK_OPERATORS``."""
    return Policy.parse(settings.fallback, settings.fallback_operators)


def channels(settings: Settings) -> Channels:
    """What dispatch sends with: the mailer, the SMS gateway, links, retries, return
    paths and the fallback policy."""
    return Channels(
        mailer=mailer(settings), sms=sms_gateway(settings),
        public_url=settings.public_url, link_secret=link_secret(settings),
        sender=settings.mail_from,
        max_attachment=int(settings.max_attachment_mb * 1024 * 1024),
        retry=lambda call: retry(call, backoff=INLINE_BACKOFF),
        verp=verp(settings), fallback=fallback_policy(settings))


def intake(settings: Settings, *, ledger: Ledger | None = None,
           archive: Archive | None = None, sms: SmsGateway | None = None,
           link_secret: bytes | None = None) -> Intake:
    """What recording bounces, complaints and receipts needs (``invoicer bounces``, the
    API's callbacks), with the channels a fallback SMS goes out on at once. Given ``sms``
    (the API's gateway), the channels hold no mailer: a fallback is never an e-mail."""
    ledger = ledger or globals()["ledger"](settings)
    archive = archive or globals()["archive"](settings)
    if sms is None:
        sending = channels(settings)
    else:
        secret = link_secret or globals()["link_secret"](settings)
        sending = Channels(mailer=None, sms=sms, public_url=settings.public_url,
                           link_secret=secret, sender=settings.mail_from,
                           retry=lambda call: retry(call, backoff=INLINE_BACKOFF),
                           verp=verp(settings), fallback=fallback_policy(settings))
    return Intake(ledger=ledger, archive=archive, verp=verp(settings),
                  policy=fallback_policy(settings), channels=sending)


def services(settings: Settings, *, deliver: bool = True) -> Services:
    """The pipeline's collaborators for one process; ``deliver=False`` archives and
    records only (a later run of the same file delivers what is still pending)."""
    _make_local_dirs(settings)
    return Services(ledger=ledger(settings), archive=archive(settings),
                    channels=channels(settings) if deliver else None,
                    rejects_dir=Path(settings.rejects_dir) if settings.rejects_dir else None,
                    options=render_options(settings))


def render_options(settings: Settings) -> RenderOptions:
    """How invoices are rendered: the bill run's and the second copies' alike. A
    summary invoice names the subscriber page where its call details are."""
    return RenderOptions(shock_share=settings.shock_share,
                         self_service_url=settings.public_url.rstrip("/") + "/access")


def _make_local_dirs(settings: Settings) -> None:
    # The embedded defaults point into ./var; create it so a fresh checkout just runs.
    for url, prefix in ((settings.db_url, "sqlite:///"), (settings.archive_url, "file://")):
        if url.startswith(prefix):
            path = Path(url[len(prefix):].split("?")[0])
            (path.parent if prefix == "sqlite:///" else path).mkdir(parents=True,
                                                                      exist_ok=True)
