"""Service settings: one URL per backend, from ``INVOICER_*`` environment variables.

The embedded defaults run on one machine with nothing to set up (local folders, a
SQLite file); at operator scale only these URLs change, never code.
"""

from __future__ import annotations

import os
import re
from functools import cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

#: Query parameters whose values are secrets wherever they appear in a URL.
_SECRET_PARAMS = re.compile(r"(pass|secret|token|key|signature|credential)", re.I)


class Settings(BaseSettings):
    """Effective configuration (``invoicer config`` prints it with secrets masked)."""

    model_config = SettingsConfigDict(env_prefix="INVOICER_", frozen=True, extra="ignore")

    archive_url: str = "file://var/archive"
    """Where PDFs and canonical records are archived: ``file://PATH`` or
    ``s3://bucket/prefix?endpoint=...&region=...``."""
    db_url: str = "sqlite:///var/ledger.db"
    """The ledger: ``sqlite:///PATH`` or ``postgresql://user@host/db``."""
    workers: int = 0
    """Processes for ``invoicer run``; 0 means one per core plus one."""

    def effective_workers(self) -> int:
        # One more process than cores: each record ends with fsyncs (archive) and a
        # commit (ledger) during which its process waits on the disk; the extra
        # process keeps every core rendering meanwhile.
        return self.workers or (os.cpu_count() or 1) + 1


@cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def mask_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode([(k, "***" if _SECRET_PARAMS.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def masked(settings: Settings) -> dict[str, str]:
    """Settings as printable strings, every URL masked."""
    out = {}
    for name, value in settings.model_dump().items():
        out[name] = mask_url(value) if isinstance(value, str) and "://" in value else str(value)
    return out
