"""Service settings: one URL per backend, from ``INVOICER_*`` environment variables.

The embedded defaults run on one machine with nothing to set up (local folders, a
SQLite file); at operator scale only these URLs change, never code.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from functools import cache
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Query parameters whose values are secrets wherever they appear in a URL.
_SECRET_PARAMS = re.compile(r"(pass|pwd|secret|token|key|sig|credential|auth|session|"
                            r"bearer|jwt|cookie)", re.I)
_SECRET_FIELDS = frozenset({"link_secret", "sms_token", "callback_token"})


class Settings(BaseSettings):
    """Effective configuration (``invoicer config`` prints it with secrets masked)."""

    model_config = SettingsConfigDict(env_prefix="INVOICER_", frozen=True, extra="ignore")

    archive_url: str = "file://var/archive"
    """Where PDFs and canonical records are archived: ``file://PATH`` or
    ``s3://bucket/prefix?endpoint=...&region=...``."""
    db_url: str = "sqlite:///var/ledger.db"
    """The ledger: ``sqlite:///PATH`` or ``postgresql://user@host/db``."""
    mail_url: str = "file://var/outbox"
    """E-mail: ``file://PATH`` (.eml files) or ``smtp://user:pass@host:587`` /
    ``smtps://...:465``."""
    mail_from: str = "invoices@localhost"
    """The From address of invoice e-mails (a brand may name its own)."""
    sms_url: str = "file://var/sms"
    """SMS notices: ``file://PATH`` (JSON Lines outbox) or ``https://:TOKEN@gateway/...``."""
    sms_token: str = ""
    """The HTTP SMS gateway's bearer token when ``sms_url`` carries none."""
    public_url: str = "http://localhost:8080"
    """Where subscribers' links point (the HTTP API)."""
    link_secret: str = ""
    """Secret for signed links; empty: one is made and kept in ``var/link-secret``
    (every machine of a deployment must share one: set it)."""
    bounce_domain: str = ""
    """The domain bounces come back to: every e-mail's envelope sender is then
    ``bounces+<signed delivery id>@<bounce_domain>`` (VERP). Empty: the From address
    (and bounces are not read)."""
    bounce_local: str = "bounces"
    """The local part of return paths (``<bounce_local>+...@<bounce_domain>``)."""
    bounce_listen: str = "127.0.0.1:2525"
    """Where ``invoicer bounces serve`` listens (``host:port``)."""
    bounce_imap_url: str = ""
    """The mailbox ``invoicer bounces fetch`` reads: ``imap://user:pass@host/INBOX`` or
    ``imaps://...``."""
    callback_token: str = ""
    """The bearer token e-mail providers and the SMS gateway present on the callback
    endpoints (``/v1/callbacks/...``); empty: the endpoints are off. At least 32
    characters."""
    fallback: str = "sms,print"
    """What a bounced or failed e-mail becomes, in order: ``sms,print`` (default),
    ``print``, ``sms``, or ``none``."""
    fallback_operators: dict[str, str] = {}
    """Per operator, as JSON: ``{"oi": "print", "tim": "none"}``."""
    rejects_dir: str = "var/rejects"
    """Where a rejected line longer than 64 KiB is kept whole (the ledger's dead letter
    keeps its first 64 KiB and names the file). At scale, a folder operators can read
    on every machine that runs bill runs."""
    trusted_proxies: str = ""
    """Addresses or networks of the reverse proxies in front of the API, comma-separated
    (``10.0.0.5, 192.168.0.0/16``): only from them is ``X-Forwarded-For`` believed.
    Empty (the default): the header is ignored, the client is the peer."""
    max_attachment_mb: float = 10
    shock_share: Decimal = Field(Decimal("0.20"), ge=0)
    """The bill-shock sentence appears on page 1 when this period's charges differ from
    the previous invoice's amount by more than this share (0.20: 20 %)."""
    """Larger PDFs are sent as a link instead of an attachment."""
    workers: int = 0
    """Processes for ``invoicer run``; 0 means one per core, plus one when the archive,
    ledger, mail or SMS is reached over the network (:meth:`effective_workers`)."""
    chunk_lines: int = 16
    """Records per chunk of a bill run, for ``invoicer run`` and the Celery workers
    alike (chunks are also closed at 4 MiB)."""

    # --- Celery workers (worker.py); see docs/scaling-out.md ---------------------------
    broker_url: str = "redis://127.0.0.1:6379/0"
    """The task queue's broker: ``redis://host:6379/0`` or ``amqp://user:pass@host/vhost``."""
    task_time_limit: int = 600
    """Hard limit, in seconds, on one task (a chunk of a bill run): the worker kills the
    process running it past this. Every other timeout is derived from it or checked
    against it."""
    retry_backoff_max: int = 120
    """Longest wait, in seconds, before a task retries after a transient error."""
    max_retries: int = 8
    """Retries of a task after transient errors; past them the reconciler takes over."""
    broker_visibility_timeout: int = 3600
    """Redis only: seconds after which an unacknowledged message is handed to another
    worker (Celery's ``visibility_timeout``)."""
    broker_consumer_timeout: int = 1800
    """RabbitMQ only: the server's ``consumer_timeout`` in seconds (RabbitMQ's default is
    30 minutes). It is the server's setting: keep this equal to ``rabbitmq.conf``."""
    stale_after: int = 0
    """Seconds after which the reconciler re-enqueues a chunk that is not finished (and
    re-queues a delivery stuck in sending); 0 means the task time limit plus the longest
    retry wait plus 60 s."""
    reconcile_every: int = 60
    """Seconds between two runs of the reconciler under Celery beat."""
    api_bill_runs: Literal["thread", "celery"] = "thread"
    """Where ``POST /v1/billing/runs`` sends a bill run: ``thread`` runs it in the API
    process, ``celery`` enqueues it for the workers (an upload is spooled to
    ``var/bill-runs``, which the workers must then see)."""
    api_opentelemetry: bool = False
    """FastAPI's native OpenTelemetry (a span, metrics and logs per request) in the API,
    for a process where an OpenTelemetry SDK is set up (``opentelemetry-instrument``, or
    an application embedding the API). Off by default: the service sets none up, and on,
    FastAPI asks OpenTelemetry for its three providers on every request even when none is
    (3.3 us a request, ~0.5 % of a subscriber history's CPU; docs/performance.md).
    Prometheus ``/metrics`` does not depend on it."""
    print_close_every: int = 300
    """Seconds between two Celery beat closes of the print batches that sealed
    themselves by size (0: never)."""
    print_seal_every: int = 86_400
    """Seconds between two Celery beat closes of every open print batch, full or not:
    the schedule on which paper invoices go to the print shop at the latest (0: never)."""

    # --- webhooks to the billing system (docs/webhooks.md) -----------------------------
    webhook_timeout: float = 10.0
    """Seconds an endpoint has to answer one webhook (connect, send, answer each)."""
    webhook_backoff: float = 10.0
    """Seconds before the first retry of a failed webhook; doubled after each failure."""
    webhook_backoff_max: float = 3600.0
    """Longest wait, in seconds, between two attempts at one webhook."""
    webhook_batch: int = 50
    """Events a sender leases at a time."""
    webhook_send_every: int = 10
    """Seconds between two Celery beat passes over the webhooks outbox (0: never)."""

    # --- observability (docs/observability.md) ----------------------------------------
    log_format: Literal["text", "json"] = "text"
    """``text``: a line a person reads in a terminal; ``json``: one JSON object per line
    for a log pipeline (``ts``, ``level``, ``logger``, ``message``, ``run_id``,
    ``invoice``...). Personal data is masked either way."""
    log_level: str = "WARNING"
    """The root log level of the CLI and the API (workers: celery's ``--loglevel``)."""
    worker_metrics_port: int = 0
    """Port on which a Celery worker serves ``/metrics`` for all its pool processes
    (prometheus_client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` too); 0:
    none."""
    worker_metrics_addr: str = "127.0.0.1"
    """Address the worker's ``/metrics`` listens on."""

    webhook_lease: int = 0
    """Seconds a sender holds the events it took; a sender that dies leaves them due
    again after this. 0: long enough for a whole batch of timeouts plus 30 s."""

    def effective_webhook_lease(self) -> int:
        # A sender must finish its batch within its lease, or another may send the
        # same events meanwhile (harmless, same ids, but wasteful).
        return self.webhook_lease or int(self.webhook_batch * self.webhook_timeout) + 30
    @field_validator("callback_token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        # A guessable token would let anyone mark deliveries bounced and make SMS go.
        if value and len(value) < 32:
            raise ValueError("INVOICER_CALLBACK_TOKEN must be at least 32 characters")
        return value

    @field_validator("fallback")
    @classmethod
    def _a_policy(cls, value: str) -> str:
        steps = [s.strip().lower() for s in value.split(",") if s.strip()]
        if steps != ["none"] and (not steps or any(s not in ("sms", "print") for s in steps)
                                  or len(set(steps)) != len(steps)):
            raise ValueError("INVOICER_FALLBACK is 'sms,print', 'print', 'sms' or 'none'")
        return value

    def effective_stale_after(self) -> int:
        # Past the hard time limit the task that owned a chunk is certainly dead (the
        # worker killed it, or the worker itself died): re-running it cannot overlap.
        # A chunk waiting for its retry's countdown is not stale either.
        return self.stale_after or self.task_time_limit + self.retry_backoff_max + 60

    def effective_workers(self) -> int:
        """The processes of ``invoicer run``: ``workers``, else one per core, plus one
        when a record's steps wait on the network (an S3 archive, PostgreSQL, an SMTP
        server or an SMS gateway): the extra process keeps every core rendering while
        another waits. With everything local (the embedded defaults: a folder, SQLite,
        outbox folders) the waits are a few fsyncs, and a third process on two cores
        bought no wall time but cost 5-9 % more CPU (800 records, three alternating
        runs each; docs/performance.md)."""
        if self.workers:
            return self.workers
        cores = os.cpu_count() or 1
        local = (self.archive_url.startswith("file:") and self.db_url.startswith("sqlite")
                 and self.mail_url.startswith("file:") and self.sms_url.startswith("file:"))
        return cores if local else cores + 1


@cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def mask_url(url: str) -> str:
    """``url`` with every credential replaced by ``***``: the password, a bare user
    part (``https://TOKEN@gateway/`` carries a token there, so a user without a
    password is masked too) and the values of secret-looking query parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = urlencode([(k, "***" if _SECRET_PARAMS.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*:/")
    # Joined by hand, as written: urlunsplit drops an empty host's "//" for schemes it
    # does not know, printing the relative "sqlite:///var/ledger.db" as
    # "sqlite:/var/ledger.db" (an absolute path to the eye) and "sqlite:////abs.db" as
    # "sqlite://abs.db" (a host).
    slashes = "//" if url.startswith(f"{parts.scheme}://") else ""
    return (f"{parts.scheme}:{slashes}{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def masked(settings: Settings) -> dict[str, str]:
    """Settings as printable strings, every URL masked."""
    out = {}
    for name, value in settings.model_dump().items():
        if name in _SECRET_FIELDS:
            unset = "(generated, var/link-secret)" if name == "link_secret" else "(none)"
            several = name == "link_secret" and "," in value
            out[name] = ("*** (rotation: the first signs, all verify)" if several
                         else "***") if value else unset
        else:
            out[name] = mask_url(value) if isinstance(value, str) and "://" in value \
                else str(value)
    return out
