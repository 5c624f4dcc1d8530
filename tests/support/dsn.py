"""Reports as MTAs and mailbox providers write them: DSNs (RFC 3464), ARF complaints
(RFC 5965), out-of-office replies. Built as raw bytes, the way they arrive."""

from __future__ import annotations


def dsn(to: str, *, status: str = "5.1.1", action: str = "failed",
        recipient: str = "ana@example.com", message_id: str = "<m1@mail.example>",
        diagnostic: str = "smtp; 550 5.1.1 <ana@example.com>: Recipient address rejected",
        boundary: str = "=_dsn_1") -> bytes:
    """A delivery status notification to ``to`` (the envelope sender of the original)."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n'
        f'\tboundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/delivery-status\r\n"
        f"\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n"
        f"Arrival-Date: Mon, 7 Dec 2026 07:00:00 +0000\r\n"
        f"\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Remote-MTA: dns; mx.example.com\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n"
        f"\r\n"
        f"Return-Path: <{to}>\r\n"
        f"From: Oi <faturas@oi.example>\r\n"
        f"To: {recipient}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Subject: Your invoice\r\n"
        f"\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def arf(to: str, *, recipient: str = "ana@example.com", return_path: str | None = None,
        message_id: str = "<m1@mail.example>", boundary: str = "=_arf_1") -> bytes:
    """An abuse report (a subscriber pressed "this is spam")."""
    return (
        f"From: abuse@mailbox.example\r\n"
        f"To: {to}\r\n"
        f"Subject: FW: Your invoice\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; '
        f'boundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain\r\n"
        f"\r\n"
        f"This is an e-mail abuse report.\r\n"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/feedback-report\r\n"
        f"\r\n"
        f"Feedback-Type: abuse\r\n"
        f"User-Agent: SomeGenerator/1.0\r\n"
        f"Version: 1\r\n"
        f"Original-Mail-From: <{return_path or to}>\r\n"
        f"Original-Rcpt-To: <{recipient}>\r\n"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/rfc822\r\n"
        f"\r\n"
        f"From: Oi <faturas@oi.example>\r\n"
        f"To: {recipient}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Subject: Your invoice\r\n"
        f"\r\n"
        f"Your invoice is attached.\r\n"
        f"\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def out_of_office(to: str) -> bytes:
    """A vacation reply that quotes the failure words a naive parser would fall for."""
    return (
        f"From: ana@example.com\r\n"
        f"To: {to}\r\n"
        f"Subject: Out of office: Your invoice\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"\r\n"
        f"I am away until Monday. Status: 5.1.1 Action: failed. Undelivered.\r\n"
    ).encode()
