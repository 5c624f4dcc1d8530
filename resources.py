"""Files shipped inside the package: templates, brands, schemas, migrations.

They are package data, found through :mod:`importlib.resources`, so a wheel installed
anywhere finds them exactly as a checkout does.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(*parts: str) -> Path:
    """A folder or file of the installed package as a filesystem path.

    pip installs wheels unzipped, so the resource is a real file; Jinja2's loaders,
    Alembic and ``glob`` need one.
    """
    return Path(str(files("invoicer").joinpath(*parts)))
