"""DKIM signatures for invoice e-mails (dkimpy, imported only when a signer signs)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from invoicer.delivery.email._email import raw_headers, set_raw_header
from invoicer.delivery.email.message import check_domain
from invoicer.delivery.email.wire import serialize

__all__ = ["DKIM_HEADERS", "DkimSigner"]

#: Headers a DKIM signature covers (when present; From always is). Content headers are
#: in so that a relay cannot swap the body's structure under a valid signature.
DKIM_HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version",
                "Content-Type", "Content-Language", "List-Unsubscribe",
                "List-Unsubscribe-Post", "Auto-Submitted")


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey``.

    ``private_key`` is the PEM (PKCS#1 or PKCS#8) of an RSA key. dkimpy is imported only
    when a signer signs, so deployments without DKIM need not install it.
    """

    selector: str
    domain: str
    private_key: bytes = field(repr=False)
    headers: tuple[str, ...] = DKIM_HEADERS

    @classmethod
    def from_file(cls, selector: str, domain: str, path: str | os.PathLike[str]) -> DkimSigner:
        """A signer whose key is read from a PEM file."""
        return cls(selector, domain, Path(path).read_bytes())

    def sign(self, message: EmailMessage) -> None:
        """Add a ``DKIM-Signature`` header (relaxed/relaxed, rsa-sha256) on top."""
        import dkim  # dkimpy

        data = serialize(message)
        include = [h.lower().encode() for h in self.headers if h in message]
        try:
            header = dkim.sign(data, self.selector.encode("ascii"),
                               check_domain(self.domain).encode("ascii"), self.private_key,
                               canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        except dkim.DKIMException as exc:
            raise ValueError(f"DKIM signing failed (selector {self.selector!r}, domain "
                             f"{self.domain!r}): {exc}") from exc
        name, value = message.policy.header_source_parse(
            header.decode("ascii").splitlines(keepends=True))
        # The signature covers the headers exactly as serialized; stored raw (not
        # re-parsed) so the policy prints it as dkimpy folded it. It goes on top, as
        # RFC 6376 §5.6 asks, so the other headers are taken off and put back unchanged.
        headers = raw_headers(message)  # raw: exactly as they were serialized
        for existing in dict.fromkeys(n for n, _ in headers):
            del message[existing]
        set_raw_header(message, name, value)
        for existing, header_value in headers:
            set_raw_header(message, existing, header_value)
