"""Imports point one way: entry points (cli, api, worker; backends.py builds their
collaborators) -> bill runs -> pipeline -> workflows -> transports (delivery/),
renderer, billing, ledger. Checked on the source, function-local imports included, so
a tangle cannot creep back in unseen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("invoicer", *parts))


def _imports(path: Path) -> set[str]:
    """Every ``invoicer.*`` module ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found |= {node.module, *names} if node.module.startswith("invoicer") else set()
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("invoicer")}
    return found


SOURCES = {_module(p): _imports(p) for p in ROOT.rglob("*.py")
           if not {"tests", "bench", "samples", "scripts", ".venv", "var", "build"}
           & set(p.relative_to(ROOT).parts)}

ENTRY = ("invoicer.cli", "invoicer.worker", "invoicer.api", "invoicer.backends")
#: Package -> what it must never import.
FORBIDDEN = {
    "invoicer.delivery": ("invoicer.ledger", "invoicer.workflows", "invoicer.pipeline",
                          "invoicer.runs", "invoicer.runner", *ENTRY),
    "invoicer.ledger": ("invoicer.delivery", "invoicer.workflows", "invoicer.pipeline",
                        "invoicer.runs", "invoicer.runner", "invoicer.renderer",
                        "invoicer.billing", *ENTRY),
    "invoicer.workflows": ("invoicer.pipeline", "invoicer.runs", "invoicer.runner", *ENTRY),
    "invoicer.pipeline": ("invoicer.runs", "invoicer.runner", *ENTRY),
    "invoicer.runs": ("invoicer.runner", *ENTRY),
    "invoicer.runner": tuple(e for e in ENTRY if e != "invoicer.backends"),
    "invoicer.api": ("invoicer.worker", "invoicer.cli"),
}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    bad = sorted((module, imported) for module, imports in SOURCES.items()
                 if _under(module, package) for imported in imports
                 if any(_under(imported, f) for f in FORBIDDEN[package]))
    assert bad == []


def test_entry_points_write_no_sql_and_know_no_tables():
    for module, imports in SOURCES.items():
        if any(_under(module, e) for e in ENTRY):
            assert not any(_under(i, "invoicer.ledger.schema") or _under(i, "invoicer.ledger.db")
                           for i in imports), module
            text = (ROOT / Path(*module.split(".")[1:])).with_suffix(".py")
            path = text if text.exists() else text.with_suffix("") / "__init__.py"
            assert "sqlalchemy" not in path.read_text(encoding="utf-8"), module


def test_stores_use_no_other_stores_internals():
    for module, imports in SOURCES.items():
        if _under(module, "invoicer.ledger"):
            private = sorted(i for i in imports if i.rsplit(".", 1)[-1].startswith("_")
                             and not i.endswith("__init__"))
            assert private == [], module
