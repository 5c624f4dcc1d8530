"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers, its own or the framework's (unknown route, wrong method,
a body that does not validate), leaves as one JSON object::

    {"type": "urn:invoicer:problem:count-mismatch", "title": "...", "status": 409,
     "detail": "...", ...extensions}

``type`` is ``about:blank`` when the HTTP status says it all (the title is then the
status phrase, as RFC 9457 asks), else a URN naming the problem; clients branch on
``type``, never on ``detail`` (which is for people). Extensions carry the facts a
client needs (e.g. the expected counts). There is no ``instance``: the client knows the
URL it called, and leaving it out keeps refusals byte-identical whatever was asked (a
prober cannot tell another shop's batch from a made-up id by the body).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["MEDIA_TYPE", "Problem", "ProblemBody", "install", "problem_response",
           "problem_responses"]

_SCHEMA_REF = {"$ref": "#/components/schemas/ProblemBody"}

MEDIA_TYPE = "application/problem+json"

#: Problem types of this API (``urn:invoicer:problem:<name>``).
TYPE_PREFIX = "urn:invoicer:problem:"


class ProblemBody(BaseModel):
    """The problem-details object (for the OpenAPI document)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


class Problem(Exception):
    """Raise to answer with a problem: ``Problem(409, "count-mismatch", "Counts differ",
    detail=..., expected={...})``; ``kind=None`` means ``about:blank``."""

    def __init__(self, status: int, kind: str | None = None, title: str | None = None, *,
                 detail: str | None = None, headers: dict[str, str] | None = None,
                 **extensions: Any) -> None:
        self.status = status
        self.type = TYPE_PREFIX + kind if kind else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(f"{status} {self.title}: {detail or ''}")


def problem_response(problem: Problem) -> JSONResponse:
    """The response for ``problem``."""
    body: dict[str, Any] = {"type": problem.type, "title": problem.title,
                            "status": problem.status}
    if problem.detail is not None:
        body["detail"] = problem.detail
    body.update(problem.extensions)
    return _AsciiJSON(body, status_code=problem.status, headers=problem.headers,
                      media_type=MEDIA_TYPE)


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: a problem may quote what a client
    sent (an operator id, a field), and a lone surrogate in it must not turn a 4xx
    answer into a 500 (``"\\ud800"`` is valid JSON; the raw code point is not UTF-8)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: these statuses answer with a problem."""
    return {status: {"model": ProblemBody, "description": HTTPStatus(status).phrase}
            for status in statuses}


def _problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Say ``application/problem+json`` for every error response of the document.

    FastAPI files a response model under ``application/json`` and documents its own
    422 body; both are problems here.
    """
    document.setdefault("components", {}).setdefault("schemas", {})["ProblemBody"] = (
        ProblemBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {MEDIA_TYPE: {"schema": dict(_SCHEMA_REF)}}
                    if status == "422":
                        response["description"] = HTTPStatus(422).phrase
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem, the framework's own included."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Only the status phrase: Starlette's details are generic anyway ("Not Found").
        return problem_response(Problem(exc.status_code, headers=dict(exc.headers or {})))

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Where and what, never the input itself: the caller has it, and echoing
        # hostile text back is how reflected injection starts.
        errors = [{"location": [str(part) for part in error.get("loc", ())],
                   "message": str(error.get("msg", "")), "kind": str(error.get("type", ""))}
                  for error in exc.errors()]
        return problem_response(
            Problem(422, "invalid-request", "The request is not valid",
                    detail="; ".join(f"{'.'.join(e['location'])}: {e['message']}"
                                     for e in errors)[:1000], errors=errors))

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_openapi(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
