"""The HTTP API (FastAPI): print shops now; subscribers and billing in later issues.

``create_app(settings)`` builds the application over the ledger and the archive the
settings name (or ready ones, for tests and embedding); ``invoicer serve`` runs it
under uvicorn. Routers live one per client kind (``api/print_shop.py``...); keys,
problem details and range downloads are shared (``api/keys.py``, ``api/problems.py``,
``api/ranges.py``). Handlers are plain ``def``: the ledger and the archive are
blocking libraries, so FastAPI runs each request in its thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import print_shop, problems
from delivery.archive import Archive, archive_from_url
from ledger import Ledger
from settings import Settings, get_settings

__all__ = ["API_VERSION", "build_app", "create_app"]

API_VERSION = "1.0.0"
"""The version of the API's contract (the OpenAPI document), not of the service."""

DESCRIPTION = """\
Telecom invoice service API.

Authenticate with an API key: `Authorization: Bearer <token>` (or `X-API-Key: <token>`).
Keys are made with `invoicer keys create` and belong to one role and a set of operators.
Errors are RFC 9457 problem details (`application/problem+json`).
"""


def build_app(lifespan: Any = None) -> FastAPI:
    """The application's routes and error handling, without backends (``app.state``
    gets ``ledger`` and ``archive`` from :func:`create_app`)."""
    app = FastAPI(title="invoicer", version=API_VERSION, description=DESCRIPTION,
                  openapi_url="/openapi.json", lifespan=lifespan)
    problems.install(app)
    app.include_router(print_shop.router)
    return app


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None,
               archive: Archive | None = None) -> FastAPI:
    """The API application.

    ``ledger`` and ``archive`` default to the ones ``settings`` (default: the
    environment's) names; a ledger made here is closed when the app shuts down. The
    ledger's schema is not migrated here (``invoicer serve`` does it first).
    """
    settings = settings or get_settings()
    owned = ledger is None
    the_ledger = ledger or Ledger.from_url(settings.db_url)
    the_archive = archive or archive_from_url(settings.archive_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            the_ledger.close()

    app = build_app(lifespan)
    app.state.ledger = the_ledger
    app.state.archive = the_archive
    app.state.settings = settings
    return app
