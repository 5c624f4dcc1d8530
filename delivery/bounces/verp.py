"""VERP: a return path per delivery, so that a bounce names its delivery.

Every invoice e-mail goes out with the envelope sender ``bounces+<id>-<tag>@<domain>``,
where ``<id>`` is the ledger's delivery id and ``<tag>`` a MAC of it
(:func:`invoicer.delivery.links.tag`, with the links' secret). A DSN goes back to that
address, so the receiver knows which delivery bounced without reading the free text of
the report, and nobody can forge a bounce for a delivery of their choosing by sending
mail to a guessed address. Lowercase only: some MTAs lowercase local parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from invoicer.delivery.links import Keys, check_tag, tag

__all__ = ["Verp"]

_PURPOSE = "verp"


@dataclass(frozen=True, slots=True)
class Verp:
    """Return paths for one bounce domain, signed with ``secret``."""

    secret: Keys
    domain: str
    local: str = "bounces"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?", self.domain.lower()):
            raise ValueError(f"not a bounce domain: {self.domain!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,30}", self.local.lower()):
            raise ValueError(f"not a bounce local part: {self.local!r}")

    def address(self, delivery_id: int) -> str:
        """The envelope sender of delivery ``delivery_id``."""
        value = str(int(delivery_id))
        return (f"{self.local}+{value}-{tag(self.secret, _PURPOSE, value)}"
                f"@{self.domain}").lower()

    def delivery_of(self, address: str) -> int | None:
        """The delivery id an address of ours names, or None (another address, or a
        tag that does not verify)."""
        spec = address.strip().strip("<>").strip().lower()
        local, _, domain = spec.rpartition("@")
        if domain != self.domain.lower():
            return None
        m = re.fullmatch(re.escape(self.local.lower()) + r"\+([0-9]{1,18})-([a-z2-7]{16})",
                         local)
        if m is None or not check_tag(self.secret, _PURPOSE, m.group(1), m.group(2)):
            return None
        return int(m.group(1))

    def is_ours(self, address: str) -> bool:
        """Whether ``address`` is at the bounce domain with our local part (signed or
        not): what the receiver accepts at RCPT TO."""
        spec = address.strip().strip("<>").strip().lower()
        local, _, domain = spec.rpartition("@")
        return domain == self.domain.lower() and (
            local == self.local.lower() or local.startswith(self.local.lower() + "+"))
