"""The HTTP API (FastAPI): print shops, subscribers (and their page), the billing system.

``create_app(settings)`` builds the application over the ledger and the archive the
settings name (or ready ones, for tests and embedding); ``invoicer serve`` runs it
under uvicorn. Routers live one per client kind (``api/print_shop.py``...); keys,
problem details and range downloads are shared (``api/keys.py``, ``api/problems.py``,
``api/ranges.py``). Handlers are plain ``def``: the ledger and the archive are
blocking libraries, so FastAPI runs each request in its thread pool. The exceptions are
the hottest subscriber reads (the history, an invoice's download by its link) and the
token check, which are ``async`` and run on the event loop: their ledger query is
awaited on PostgreSQL (``ledger.db.Database.read_async``) and read inline from SQLite's
file, which costs less than the hop to the thread pool.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from invoicer import backends, longlived
from invoicer.api import (
    billing,
    callbacks,
    details,
    fleet,
    health,
    operations,
    preferences,
    print_shop,
    problems,
    self_service,
    subscriber,
    web,
    web_details,
    web_preferences,
)
from invoicer.api.access import AccessLimits, AccessService
from invoicer.api.billrun import BillRunQueue, queue_from_settings
from invoicer.api.edge import AllowedMethods, Deferred, TrustedProxies, parse_networks
from invoicer.delivery.archive import Archive
from invoicer.delivery.email import Mailer
from invoicer.delivery.links import Keys, redact_tokens_in_logs
from invoicer.delivery.sms import SmsGateway
from invoicer.ledger import Ledger
from invoicer.settings import Settings, get_settings
from invoicer.workflows.preferences import ConfirmationMail, confirmation_key

__all__ = ["API_VERSION", "GC_GEN0_THRESHOLD", "UVICORN_OPTIONS", "build_app", "create_app",
           "served_app"]

#: How uvicorn must serve the app (``invoicer serve``, the tests' servers, the benches):
#: its own proxy-header handling off, since it believes ``X-Forwarded-For`` from any
#: local client and rewrites the client before the app sees the peer; the app believes
#: it from ``INVOICER_TRUSTED_PROXIES`` only (:class:`~invoicer.api.edge.TrustedProxies`).
#: httptools' HTTP parser (a dependency), not h11: a request's parsing in C. The event
#: loop stays asyncio's: uvloop's gave the same throughput here but a p99 of 0.6-1.3 s
#: against 0.1-0.2 s under 200 connections (docs/performance.md).
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "server_header": False,
                                   "loop": "asyncio", "http": "httptools"}

#: The garbage collector's youngest-generation threshold in a serving process (Python's
#: default: 700 allocations). See :func:`served_app`.
GC_GEN0_THRESHOLD = 10_000

API_VERSION = "1.0.0"
"""The version of the API's contract (the OpenAPI document), not of the service."""

DESCRIPTION = """\
Telecom invoice service API.

Print shops, the billing system and operations authenticate with an API key: `Authorization: Bearer
<token>` (or `X-API-Key: <token>`). Keys are made with `invoicer keys create` and belong
to one role and a set of operators.

Subscribers send a session token (from an SMS code) or the token of an invoice link
from an e-mail as `Authorization: Bearer <token>`; documents are fetched through
signed links (`/invoices/<token>.pdf`).

Errors are RFC 9457 problem details (`application/problem+json`).
"""


def build_app(lifespan: Any = None, *, opentelemetry: bool = False) -> FastAPI:
    """The application's routes and error handling, without backends (``app.state``
    gets ``ledger`` and ``archive`` from :func:`create_app`).

    ``opentelemetry``: FastAPI's native telemetry (``INVOICER_API_OPENTELEMETRY``). Off,
    FastAPI emits no span, metric or log of its own to OpenTelemetry even where an SDK
    is set up, and skips asking OpenTelemetry for its tracer, meter and logger
    providers on every request (environment look-ups when none is set: 3.3 us a request,
    ~0.5 % of a subscriber history's CPU, docs/performance.md)."""
    telemetry = None if opentelemetry else {"tracing": False, "metrics": False,
                                            "logs": False}
    app = FastAPI(title="invoicer", version=API_VERSION, description=DESCRIPTION,
                  openapi_url="/openapi.json", lifespan=lifespan, telemetry=telemetry)
    problems.install(app)
    app.add_middleware(AllowedMethods, routes=lambda: app.routes)
    app.include_router(print_shop.router)
    app.include_router(subscriber.router)
    app.include_router(self_service.router)
    app.include_router(preferences.router)
    app.include_router(subscriber.document_router)
    app.include_router(details.router)
    app.include_router(details.document_router)
    app.include_router(billing.router)
    app.include_router(fleet.router)
    app.include_router(operations.router)
    app.include_router(callbacks.router)
    app.include_router(web.router)
    app.include_router(web_preferences.router)
    app.include_router(web_details.router)
    app.include_router(health.router)
    return app


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None,
               archive: Archive | None = None, sms: SmsGateway | None = None,
               link_secret: Keys | None = None, limits: AccessLimits | None = None,
               bill_runs: BillRunQueue | None = None, mailer: Mailer | None = None,
               readiness: Mapping[str, Callable[[], object]] | None = None) -> FastAPI:
    """The API application.

    ``ledger``, ``archive`` and ``sms`` default to the ones ``settings`` (default: the
    environment's) names, ``link_secret`` to the one the bill run signs e-mail links
    with (all built by :mod:`invoicer.backends`); a ledger made here is closed when the
    app shuts down. ``bill_runs`` defaults to the queue ``INVOICER_API_BILL_RUNS`` names
    (:func:`~api.billrun.queue_from_settings`: a thread in this process, or the Celery
    workers); ``readiness`` to the probes of ``/readyz``
    (:func:`~invoicer.backends.readiness_checks`). The ledger's schema is not migrated
    here (``invoicer serve`` does it first).
    """
    settings = settings or get_settings()
    redact_tokens_in_logs()  # a link is a credential: the access log keeps the route only
    owned = ledger is None
    the_ledger = ledger or backends.ledger(settings)
    the_archive = archive or backends.archive(settings)
    secret = link_secret or backends.link_secret(settings)
    the_sms = sms or backends.sms_gateway(settings)
    # The mailer sends subscribers' address confirmations (workflows.preferences).
    the_mailer = mailer or backends.mailer(settings)
    queue = bill_runs or queue_from_settings(settings, the_ledger, Path("var") / "bill-runs")
    trusted = parse_networks(settings.trusted_proxies)
    deferred = Deferred(name="access-codes")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        deferred.close()
        if owned:
            await the_ledger.aclose()  # the loop's asynchronous connections too
        if mailer is None:
            the_mailer.close()

    app = build_app(lifespan, opentelemetry=settings.api_opentelemetry)
    app.state.ledger = the_ledger
    app.state.archive = the_archive
    app.state.settings = settings
    app.state.access = AccessService(the_ledger, the_sms, secret, limits=limits,
                                     archive=the_archive)
    app.state.confirmations = ConfirmationMail(the_mailer, settings.mail_from,
                                               settings.public_url, confirmation_key(secret))
    app.state.bill_runs = queue
    app.state.readiness = (readiness if readiness is not None
                           else backends.readiness_checks(settings, the_ledger, the_archive))
    # Callbacks: a fallback SMS goes out from here at once (a fallback is never an
    # e-mail: these channels hold no mailer).
    app.state.intake = backends.intake(settings, ledger=the_ledger, archive=the_archive,
                                       sms=the_sms, link_secret=secret)
    app.state.deferred = deferred  # SMS codes go out here, off the request's connection
    # Outermost: everything inside sees the client as the trusted proxies name it.
    app.add_middleware(TrustedProxies, trusted=trusted)
    return app


def served_app() -> FastAPI:
    """The app as ``invoicer serve`` runs it: uvicorn's factory, called once in each
    worker process (which is the app's alone), :func:`create_app` with the process's
    garbage collector tuned for serving once it is built.

    Under 200 connections Python's defaults made each worker run a full collection every
    2-3 s, 200-450 ms each (measured with ``gc.callbacks``, docs/performance.md round
    3): the objects of requests in flight outlive the youngest generation's frequent
    collections (every 700 allocations), get promoted, and eventually set off a full
    collection that walks every object the process holds (~180,000 after start-up) while
    every request of the worker waits. So:

    - ``gc.freeze()`` after a ``gc.collect()``: what start-up made (modules, routes,
      pools) lives as long as the process; frozen, no collection walks it again;
    - the youngest generation collected every :data:`GC_GEN0_THRESHOLD` allocations
      instead of 700: most of a request's objects are gone by then, few are promoted,
      and no full collection ran under load in the bench.

    Nothing is kept that would otherwise be freed (reference counting frees as before;
    only cycles that start-up left wait for a collection): workers' RSS stayed at
    136-145 MB with or without. Not in :func:`create_app`, which tests and embedding
    applications call in processes that are not only the API's."""
    app = create_app()
    longlived.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    return app
