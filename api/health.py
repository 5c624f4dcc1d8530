"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

Outside the versioned API and its OpenAPI document (they are for load balancers,
orchestrators and Prometheus, not for clients), and without keys: put them behind the
network's own controls (docs/observability.md). ``/metrics`` reads its ledger gauges
through one collector per application, cached for a few seconds.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from invoicer.health import check_all
from invoicer.metrics import CONTENT_TYPE_LATEST, LedgerCollector, exposition

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
def healthz() -> JSONResponse:
    """The process answers: nothing else is asked (a database outage must not make an
    orchestrator restart every API process)."""
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when every collaborator answers, else 503; each probe's answer either way."""
    result = await run_in_threadpool(check_all, request.app.state.readiness)
    return JSONResponse({"status": "ready" if result.ready else "not ready",
                         "checks": dict(result.checks)},
                        status_code=200 if result.ready else 503, headers=_NO_STORE)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text: work counters (every process's in multiprocess mode) and the
    ledger's gauges."""
    state = request.app.state
    if getattr(state, "ledger_collector", None) is None:
        ledger = state.ledger
        state.ledger_collector = LedgerCollector(ledger.reports.counts,
                                                 ledger.webhooks.backlog)
    return Response(exposition(state.ledger_collector), media_type=CONTENT_TYPE_LATEST,
                    headers=_NO_STORE)
