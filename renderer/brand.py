"""Operator branding: geometry, colours, logo, legal footer, label overrides.

A brand is data (``templates/brands/<operator id>/brand.toml``), frozen once loaded.
Positions on the page derive from the brand's page size and margins, never from a
hard-coded A4 height, so a Letter-size operator needs only a different brand file.

The brand file's ``[self_service]`` table holds the operator's choices about its
subscribers' self-service; the renderer reads its ``detail`` and ``url``
(:class:`SelfService`: whether invoices carry the call details or only a summary, and
where that summary sends its reader), the page and API the rest
(:mod:`invoicer.operator_settings`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from reportlab.lib import pagesizes
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.units import mm

from invoicer.resources import package_path

BRANDS_DIR = package_path("templates", "brands")
NEUTRAL = "_neutral"


DETAIL_LEVELS = ("full", "summary")


@dataclass(frozen=True)
class SelfService:
    """An operator's self-service settings (``[self_service]`` in its brand file).

    ``detail``: ``full`` (default) puts the call-details annex in every invoice;
    ``summary`` leaves it out and prints where to get it instead (the detailed bill on
    demand). ``url``: the subscriber page that sentence names, when the operator serves
    it under its own address (default: the service's ``public_url`` + ``/access``).
    The table's other keys are the page's and API's (:mod:`invoicer.operator_settings`).
    """

    detail: str = "full"
    url: str | None = None

    @classmethod
    def of(cls, data: dict[str, Any], brand_id: str) -> SelfService:
        settings = cls(detail=data.get("detail", "full"), url=data.get("url"))
        if settings.detail not in DETAIL_LEVELS or (
                settings.url is not None
                and not (isinstance(settings.url, str) and settings.url.startswith("https://"))):
            # A typo here would silently change what subscribers get: refuse to load.
            raise ValueError(f"brand {brand_id}: [self_service] detail must be one of "
                             f"{DETAIL_LEVELS} and url an https:// address (got {data!r})")
        return settings


@dataclass(frozen=True)
class Brand:
    """How one operator's invoices look."""

    id: str
    page_width: float
    page_height: float
    margin_left: float
    margin_right: float
    margin_top: float
    margin_bottom: float
    primary: Color
    accent: Color
    text: Color
    muted: Color
    logo: Path | None
    logo_width: float
    legal_footer: dict[str, str] = field(repr=False)
    label_overrides: dict[str, dict[str, str]] = field(repr=False)
    self_service: SelfService = field(default_factory=SelfService)

    @property
    def content_width(self) -> float:
        return self.page_width - self.margin_left - self.margin_right

    def footer(self, locale_id: str) -> str:
        """The legal footer in the invoice's language, else the brand's default."""
        language = locale_id.split("_")[0]
        return (self.legal_footer.get(locale_id) or self.legal_footer.get(language)
                or self.legal_footer.get("default", ""))

    def labels_for(self, locale_id: str) -> dict[str, str]:
        """Label overrides for a locale (e.g. an operator's own word for "invoice")."""
        return {**self.label_overrides.get("default", {}),
                **self.label_overrides.get(locale_id, {})}


def brand_for(operator_id: str) -> Brand:
    """The brand of ``operator_id``; the neutral brand for an operator without one."""
    path = BRANDS_DIR / operator_id / "brand.toml"
    # operator ids are validated identifiers, but never let one reach outside BRANDS_DIR.
    if operator_id.startswith((".", "_")) or not path.is_file():
        operator_id = NEUTRAL
    return _load(operator_id)


@cache
def _load(brand_id: str) -> Brand:
    folder = BRANDS_DIR / brand_id
    with open(folder / "brand.toml", "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    width, height = getattr(pagesizes, data.get("page_size", "A4").upper())
    margins = data.get("margins_mm", {})
    colours = data.get("colours", {})
    logo = data.get("logo")
    return Brand(
        id=brand_id,
        page_width=width,
        page_height=height,
        margin_left=margins.get("left", 18) * mm,
        margin_right=margins.get("right", 15) * mm,
        margin_top=margins.get("top", 12) * mm,
        margin_bottom=margins.get("bottom", 14) * mm,
        primary=HexColor(colours.get("primary", "#33475b")),
        accent=HexColor(colours.get("accent", "#e8edf2")),
        text=HexColor(colours.get("text", "#1d1d1b")),
        muted=HexColor(colours.get("muted", "#6b7280")),
        logo=folder / logo if logo else None,
        logo_width=data.get("logo_width_mm", 30) * mm,
        legal_footer=data.get("legal_footer", {}),
        label_overrides=data.get("labels", {}),
        self_service=SelfService.of(data.get("self_service", {}), brand_id),
    )
