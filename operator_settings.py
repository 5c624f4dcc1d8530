"""What each operator decides about its subscribers' self-service.

Read from the ``[self_service]`` table of the operator's brand file
(``templates/brands/<operator id>/brand.toml``, beside its colours and logo, which the
page uses too); an operator without a brand, or without the table, gets the defaults::

    [self_service]
    history = 13                  # past invoices the page and the API list
    preference_owner = "service"  # "billing" (default): the billing record's
                                  # delivery.mode decides; "service": a subscriber's
                                  # confirmed choice overrides it (workflows.preferences)
    name = "Oi"                   # the name on the page and in the SMS code
    support = { phone = "*144", web = "https://www.oi.com.br/ajuda", email = "..." }
    line_access = "own_line"      # "none" (default): what a business line's own phone
                                  # sees after the SMS code: nothing, or its own line
                                  # (api.access, api.details)

The same table's ``detail`` and ``url`` (full or summary invoices, and the page the
summary names) are the renderer's: :class:`renderer.brand.SelfService`.

Read once per process; frozen.
"""

from __future__ import annotations

import base64
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from invoicer.resources import package_path

__all__ = ["DEFAULT_HISTORY", "OperatorSettings", "operator_settings"]

BRANDS_DIR = package_path("templates", "brands")
NEUTRAL = "_neutral"
DEFAULT_HISTORY = 13
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HEX_RE = re.compile(r"#[0-9a-fA-F]{6}")
_LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """One operator's self-service settings and page branding."""

    operator_id: str
    history: int = DEFAULT_HISTORY
    preference_owner: Literal["billing", "service"] = "billing"
    line_access: Literal["none", "own_line"] = "none"
    name: str | None = None
    support_phone: str | None = None
    support_web: str | None = None
    support_email: str | None = None
    primary: str = "#33475b"
    accent: str = "#e8edf2"
    logo_data_uri: str | None = None

    @property
    def service_owns_preference(self) -> bool:
        """True when a subscriber's confirmed choice overrides the record's mode."""
        return self.preference_owner == "service"


def _colour(value: Any, default: str) -> str:
    # Colours go into a <style> block: only #rrggbb, never free text.
    return value if isinstance(value, str) and _HEX_RE.fullmatch(value) else default


@cache
def operator_settings(operator_id: str) -> OperatorSettings:
    """The settings of ``operator_id`` (defaults for an operator without a brand)."""
    folder = BRANDS_DIR / operator_id
    if not _ID_RE.fullmatch(operator_id) or not (folder / "brand.toml").is_file():
        folder = BRANDS_DIR / NEUTRAL
    with open(folder / "brand.toml", "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    own = data.get("self_service", {})
    support = own.get("support", {})
    colours = data.get("colours", {})
    history = own.get("history", DEFAULT_HISTORY)
    if not isinstance(history, int) or not 1 <= history <= 36:
        raise ValueError(f"{folder.name}: self_service.history must be 1..36, not {history!r}")
    owner = own.get("preference_owner", "billing")
    if owner not in ("billing", "service"):
        raise ValueError(f"{folder.name}: self_service.preference_owner is billing or service")
    line_access = own.get("line_access", "none")
    if line_access not in ("none", "own_line"):
        raise ValueError(f"{folder.name}: self_service.line_access is none or own_line")
    logo = None
    if data.get("logo"):
        path = folder / data["logo"]
        kind = _LOGO_TYPES.get(path.suffix.lower())
        if kind and path.is_file():
            # Inline, so the page's Content-Security-Policy needs only ``img-src data:``.
            logo = f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
    return OperatorSettings(
        operator_id=operator_id, history=history, preference_owner=owner,
        line_access=line_access,
        name=own.get("name"), support_phone=support.get("phone"),
        support_web=support.get("web"), support_email=support.get("email"),
        primary=_colour(colours.get("primary"), "#33475b"),
        accent=_colour(colours.get("accent"), "#e8edf2"), logo_data_uri=logo)
