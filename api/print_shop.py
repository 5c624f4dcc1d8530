"""The print shop's endpoints: ready batches, their files, and the acknowledgement.

Every route needs a ``print_shop`` key (:mod:`api.keys`) and sees only the batches of
the key's operators. A batch that does not exist, belongs to another operator, is not
closed yet, or whose id is not an id at all is the same 404 problem, byte for byte:
nothing tells a prober which of these it met.

The flow for a shop::

    GET  /v1/print-shop/batches                   ready batches (closed, not acknowledged)
    GET  /v1/print-shop/batches/B12               one batch (also once printed)
    GET  /v1/print-shop/batches/B12/pdf           the print-ready PDF   } Range, If-Range,
    GET  /v1/print-shop/batches/B12/manifest.json the manifest          } ETag = SHA-256
    GET  /v1/print-shop/batches/B12/manifest.csv  the manifest as CSV   }
    POST /v1/print-shop/batches/B12/ack           {"documents", "pages", "sheets"} printed
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from invoicer.api.keys import require_role
from invoicer.api.problems import Problem, problem_responses
from invoicer.api.ranges import Download, ranged_response
from invoicer.delivery.archive import Archive
from invoicer.delivery.errors import ArchiveNotFoundError
from invoicer.ledger import ApiKey, Ledger, LedgerConflict, PrintBatch, PrintCountMismatch
from invoicer.workflows.printing import acknowledge, batch_name

__all__ = ["router"]

PREFIX = "/v1/print-shop"
READY = frozenset({"closed"})
VISIBLE = frozenset({"closed", "printed"})

router = APIRouter(prefix=PREFIX, tags=["print shop"],
                   responses=problem_responses(401, 403),
                   # operationId = the function's name: what client generators show.
                   generate_unique_id_function=lambda route: route.name)

ShopKey = Annotated[ApiKey, Depends(require_role("print_shop"))]
BatchId = Annotated[str, Path(description="The batch, as in the list: `B12`.",
                              examples=["B12"], max_length=32)]


# ---------------------------------------------------------------------------- models


class BatchFile(BaseModel):
    """One file of a batch: where to fetch it, and (when known) what it must be."""

    url: str = Field(description="Path of the download, relative to the API's address.")
    media_type: str
    sha256: str | None = Field(None, description="Hex SHA-256; also the download's ETag.")
    size: int | None = Field(None, description="Bytes.")


class Printed(BaseModel):
    """The acknowledgement a batch received."""

    printed_at: datetime
    documents: int
    sheets: int


class Batch(BaseModel):
    """A closed batch: what it holds and where its files are."""

    batch: str = Field(examples=["B12"])
    operator: str
    state: str = Field(description="`closed` (ready to print) or `printed` (acknowledged).")
    documents: int
    pages: int = Field(description="Pages of the batch PDF, padding pages included.")
    sheets: int = Field(description="Duplex sheets: pages / 2.")
    closed_at: datetime | None
    pdf: BatchFile
    manifest_json: BatchFile
    manifest_csv: BatchFile
    printed: Printed | None = None


class BatchList(BaseModel):
    """The ready batches of the key's operators, oldest first (print them in order)."""

    batches: list[Batch]


class Acknowledgement(BaseModel):
    """What the shop printed: the batch's totals, as in its manifest."""

    model_config = ConfigDict(extra="forbid")

    documents: int = Field(ge=0, le=10**9)
    pages: int = Field(ge=0, le=10**9)
    sheets: int = Field(ge=0, le=10**9)


class Acknowledged(BaseModel):
    """The batch as acknowledged: the same answer however often it is sent."""

    batch: str
    state: str = Field(description="Always `printed`.")
    printed_at: datetime
    documents: int
    pages: int
    sheets: int
    invoices_printed: int = Field(description="Invoices now marked printed (delivered).")


# ---------------------------------------------------------------------------- helpers


def _ledger(request: Request) -> Ledger:
    return request.app.state.ledger


def _archive(request: Request) -> Archive:
    return request.app.state.archive


_BATCH_ID = re.compile(r"B[1-9][0-9]{0,17}", re.ASCII)


def _not_found() -> Problem:
    # A fresh exception each time: one shared instance would collect tracebacks across
    # requests and threads.
    return Problem(404, "batch-not-found", "No such batch",
                   detail="No batch with this id is available to this API key.")


def _batch(request: Request, key: ApiKey, text: str, states: frozenset[str]) -> PrintBatch:
    """The batch ``text`` names if ``key`` may see it in one of ``states``; else 404."""
    # Exactly what the API hands out: no spaces, signs, leading zeros or non-ASCII
    # digits (str.isdigit() takes "٣"), and short of the database's integer range.
    if not _BATCH_ID.fullmatch(text):
        raise _not_found()
    batch = _ledger(request).print_batches.get(int(text[1:]))
    if batch is None or batch.operator_id not in key.operators or batch.state not in states:
        raise _not_found()
    return batch


def _files(batch: PrintBatch) -> dict[str, BatchFile]:
    base = f"{PREFIX}/batches/{batch_name(batch.id)}"
    return {
        "pdf": BatchFile(url=f"{base}/pdf", media_type="application/pdf",
                         sha256=batch.pdf_sha256, size=batch.pdf_size),
        "manifest_json": BatchFile(url=f"{base}/manifest.json",
                                   media_type="application/json"),
        "manifest_csv": BatchFile(url=f"{base}/manifest.csv",
                                  media_type="text/csv; charset=utf-8; header=present"),
    }


def _view(batch: PrintBatch, archive: Archive | None = None) -> Batch:
    files = _files(batch)
    if archive is not None:  # the detail view: the manifests' checksums too
        for name, key in (("manifest_json", batch.json_key), ("manifest_csv", batch.csv_key)):
            info = archive.stat(key or "")
            files[name] = files[name].model_copy(update={"sha256": info.sha256,
                                                          "size": info.size})
    printed = None
    if batch.state == "printed" and batch.printed_at is not None:
        printed = Printed(printed_at=batch.printed_at, documents=batch.printed_documents or 0,
                          sheets=batch.printed_sheets or 0)
    return Batch(batch=batch_name(batch.id), operator=batch.operator_id, state=batch.state,
                 documents=batch.documents, pages=batch.pages, sheets=batch.sheets,
                 closed_at=batch.closed_at, printed=printed, **files)


def _download(request: Request, key: ApiKey, text: str, which: str) -> Response:
    batch = _batch(request, key, text, VISIBLE)
    archive = _archive(request)
    name = batch_name(batch.id)
    try:
        if which == "pdf":
            # The ledger's checksum and size: what the manifest and the list promise.
            download = Download(batch.pdf_key or "", batch.pdf_size or 0,
                                batch.pdf_sha256 or "", "application/pdf", f"{name}.pdf")
        else:
            object_key = batch.json_key if which == "json" else batch.csv_key
            info = archive.stat(object_key or "")
            media = ("application/json" if which == "json"
                     else "text/csv; charset=utf-8; header=present")
            download = Download(info.key, info.size, info.sha256, media, f"{name}.{which}")
        return ranged_response(request, archive, download)
    except ArchiveNotFoundError:
        # The ledger says closed, the archive has no file: ours to fix, not the shop's.
        raise Problem(503, "batch-file-missing", "The batch's file is not available",
                      detail="Try again later; operations have been told.") from None


_DOWNLOAD_RESPONSES = {
    **problem_responses(404, 416),
    200: {"description": "The whole file."},
    206: {"description": "The requested byte range (`Content-Range`)."},
    304: {"description": "Not modified (`If-None-Match` matched the ETag)."},
}


# ---------------------------------------------------------------------------- routes


@router.get("/batches", response_model=BatchList, summary="List ready batches")
def list_batches(
    request: Request,
    key: ShopKey,
    operator: Annotated[str | None, Query(
        description="Only this operator's batches (one of the key's).",
        max_length=64)] = None,
) -> BatchList:
    """Closed batches of the key's operators that are not acknowledged yet, oldest first."""
    ledger = _ledger(request)
    operators = [op for op in key.operators if operator in (None, op)]
    batches = ledger.reports.print_batches(operators, states=READY)
    return BatchList(batches=[_view(b) for b in sorted(batches, key=lambda b: b.id)])


@router.get("/batches/{batch}", response_model=Batch, summary="One batch",
            responses=problem_responses(404))
def get_batch(request: Request, key: ShopKey, batch: BatchId) -> Batch:
    """A closed or printed batch with the checksums and sizes of all three files."""
    return _view(_batch(request, key, batch, VISIBLE), _archive(request))


@router.get("/batches/{batch}/pdf",
             summary="Download the batch PDF", response_class=Response,
            responses={**_DOWNLOAD_RESPONSES,
                       200: {"description": "The whole file.",
                             "content": {"application/pdf": {}}}})
def download_pdf(request: Request, key: ShopKey, batch: BatchId) -> Response:
    """The print-ready PDF, streamed; resume a broken download with
    ``Range: bytes=<bytes you have>-`` and ``If-Range: <ETag>``."""
    return _download(request, key, batch, "pdf")


@router.get("/batches/{batch}/manifest.json",
             summary="Download the manifest (JSON)", response_class=Response,
            responses=_DOWNLOAD_RESPONSES)
def download_manifest_json(request: Request, key: ShopKey, batch: BatchId) -> Response:
    """The manifest as JSON (``invoicer-print-manifest/1``); ranges as for the PDF."""
    return _download(request, key, batch, "json")


@router.get("/batches/{batch}/manifest.csv",
             summary="Download the manifest (CSV)", response_class=Response,
            responses=_DOWNLOAD_RESPONSES)
def download_manifest_csv(request: Request, key: ShopKey, batch: BatchId) -> Response:
    """The manifest as CSV (RFC 4180, UTF-8); ranges as for the PDF."""
    return _download(request, key, batch, "csv")


@router.post("/batches/{batch}/ack", response_model=Acknowledged,
             summary="Acknowledge a batch as printed",
             responses=problem_responses(404, 409, 422))
def acknowledge_batch(request: Request, key: ShopKey, batch: BatchId,
                      printed: Acknowledgement) -> Acknowledged:
    """Say the batch is printed, with its counts; its invoices are marked printed.

    The counts must be the manifest's totals (409 ``count-mismatch`` otherwise, and
    nothing changes). Acknowledging again with the same counts is a no-op that gives
    the same answer.
    """
    found = _batch(request, key, batch, VISIBLE)
    expected = {"documents": found.documents, "pages": found.pages, "sheets": found.sheets}
    received = printed.model_dump()
    mismatch = Problem(
        409, "count-mismatch", "The counts do not match the batch",
        detail=(f"{batch_name(found.id)} has {found.documents} documents, {found.pages} "
                f"pages on {found.sheets} sheets; the acknowledgement says "
                f"{printed.documents}, {printed.pages} and {printed.sheets}. "
                "Nothing was recorded."),
        expected=expected, received=received)
    if received != expected:
        raise mismatch
    try:
        acknowledge(_ledger(request), found.id, printed.documents, printed.sheets)
    except PrintCountMismatch:  # pragma: no cover - checked above, against the same row
        raise mismatch from None
    except LedgerConflict:  # pragma: no cover - a visible batch is closed or printed
        raise Problem(409, "batch-not-closed", "The batch is not ready") from None
    done = _ledger(request).print_batches.get(found.id)
    assert done is not None and done.printed_at is not None
    return Acknowledged(batch=batch_name(done.id), state=done.state,
                        printed_at=done.printed_at, documents=done.documents,
                        pages=done.pages, sheets=done.sheets,
                        invoices_printed=done.documents)


# HEAD on every download (size, ETag, Accept-Ranges without the body), kept out of the
# OpenAPI document where it would repeat each GET under a clashing operationId.
for _route in (download_pdf, download_manifest_json, download_manifest_csv):
    _path = next(r.path for r in router.routes if getattr(r, "name", None) == _route.__name__)
    router.add_api_route(_path.removeprefix(PREFIX), _route, methods=["HEAD"],
                         include_in_schema=False, name=f"{_route.__name__}_head")
