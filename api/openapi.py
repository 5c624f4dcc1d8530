"""The OpenAPI document as a file: ``schema/openapi.json`` (kept current by a test).

Client generators and the print shops' developers read the file in the repository;
``invoicer openapi -o schema/openapi.json`` rewrites it after an API change.
"""

from __future__ import annotations

import json

from invoicer.resources import package_path

__all__ = ["OPENAPI_PATH", "openapi_document", "openapi_text"]

OPENAPI_PATH = package_path("schema", "openapi.json")


def openapi_document() -> dict:
    """The document ``/openapi.json`` serves (built without touching any backend)."""
    from invoicer.api import build_app

    # Without a ledger or an archive: the document must not depend on the machine.
    return build_app().openapi()


def openapi_text() -> str:
    """The document as stable, indented JSON text."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
