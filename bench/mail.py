"""E-mail benchmark: the service's SMTP path against a raw sender, same server, same run.

    python bench/mail.py                       # 10,000 e-mails, 50 KB PDFs, concurrency 4
    python bench/mail.py --count 2000 --concurrency 8 --raw-connections 8

A local aiosmtpd server runs in a child process (its own core and GIL, as a real MTA
would be); its handler counts and discards. Against it, one after the other:

(a) **raw ceiling**: the messages pre-built as bytes (built and dot-stuffed before the
    clock starts), sent over several asyncio connections with MAIL/RCPT/DATA written in
    one go (pipelined) and nothing else: what the server accepts at most;
(b) **service**: for every billing record, templating (Jinja2), MIME building
    (:func:`delivery.email.message.build_invoice_message`), serialization and sending
    through :class:`delivery.email.smtp.SmtpMailer` (aiosmtplib, ``concurrency`` pooled
    connections), with each outcome handed to :func:`record_outcome`, where the ledger
    update goes.

It prints messages/s for both, the ratio (target >= 70 %) and the concurrency used,
and checks that the server counted every message.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file (email.py)
# would shadow the standard library's ``email`` package for everything imported later.
# The project root takes the folder's place.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402  (after the sys.path fix, on purpose)
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

SENDER = ("Faturas", "faturas@mail.bench.example")
RAW_DISTINCT = 256  # raw (a) cycles through this many pre-built messages: 10,000 would be 700 MB


# --- the server (child process) --------------------------------------------------------


class CountingHandler:
    """Accepts everything, keeps counts only (10,000 x 70 KB would be 700 MB)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        self.bytes += len(envelope.original_content)
        return "250 2.0.0 Ok"


def serve() -> None:
    """Child process: run aiosmtpd on a free loopback port; print the port, then answer
    ``count`` lines on stdin with ``<messages> <bytes>`` until stdin closes."""
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = CountingHandler()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench.smtp", enable_SMTPUTF8=True),
            "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"count":
                print(handler.messages, handler.bytes, flush=True)
        server.close()

    asyncio.run(main())


class ServerProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def count(self) -> tuple[int, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        messages, size = self.proc.stdout.readline().split()
        return int(messages), int(size)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# --- the workload ----------------------------------------------------------------------


def records(count: int) -> list:
    """``count`` distinct synthetic records (six locales), all electronic with a PDF
    attached, parsed before any clock starts."""
    from invoicer.billing import parse_record
    from invoicer.billing.synthetic import generate

    out = []
    for i, data in enumerate(generate(count, cdrs=3, seed=7)):
        data["delivery"] = {"mode": "electronic", "email": f"subscriber{i}@example.com",
                            "attach_pdf": True}
        out.append(parse_record(json.dumps(data, ensure_ascii=False).encode(), line=i + 1))
    return out


def build(record, pdf: bytes):
    """The service's per-message work before sending: templates + MIME + headers."""
    from invoicer.delivery.email import build_invoice_message, message_id

    return build_invoice_message(
        record, pdf=pdf, link=None, sender=SENDER, reply_to=None,
        message_id=message_id(record.operator.id, record.invoice.number, 0,
                              "mail.bench.example"))


def record_outcome(message, outcome) -> None:
    """LEDGER HOOK: where the pipeline records each delivery (sent / failed_permanent /
    unknown, with the SMTP reply) in the ledger. A no-op until the ledger has delivery
    rows; the benchmark already pays for the call in the caller's thread, where the
    ledger update will run."""


# --- (a) raw sender --------------------------------------------------------------------


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def _raw_connection(port: int, jobs: list[tuple[bytes, bytes]], counter: list[int],
                          total: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _read_reply(reader)
    writer.write(b"EHLO raw.bench\r\n")
    await _read_reply(reader)
    while counter[0] < total:
        i = counter[0]
        counter[0] += 1
        envelope, payload = jobs[i % len(jobs)]
        writer.write(envelope)  # MAIL, RCPT, DATA in one write
        for _ in range(3):
            reply = await _read_reply(reader)
        assert reply.startswith(b"354"), reply
        writer.write(payload)
        reply = await _read_reply(reader)
        assert reply.startswith(b"250"), reply
    writer.write(b"QUIT\r\n")
    await _read_reply(reader)
    writer.close()
    await writer.wait_closed()


def raw_send(port: int, jobs: list[tuple[bytes, bytes]], total: int, connections: int) -> float:
    counter = [0]

    async def main() -> None:
        await asyncio.gather(*(_raw_connection(port, jobs, counter, total)
                               for _ in range(connections)))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def raw_jobs(recs: list, pdf: bytes) -> list[tuple[bytes, bytes]]:
    from invoicer.delivery.email.smtp import _prepare

    jobs = []
    for record in recs[:RAW_DISTINCT]:
        out = _prepare(build(record, pdf), None)
        envelope = (f"MAIL FROM:<{out.sender}>\r\n"
                    + "".join(f"RCPT TO:<{r}>\r\n" for r in out.recipients)
                    + "DATA\r\n").encode()
        jobs.append((envelope, out.payload))
    return jobs


# --- (b) the service path --------------------------------------------------------------


def service_send(port: int, recs: list, pdf: bytes, concurrency: int) -> tuple[float, int, int]:
    from invoicer.delivery.email import SmtpMailer
    from invoicer.delivery.errors import DeliveryError

    mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{port}?concurrency={concurrency}"
                                 "&local_hostname=service.bench")
    failures = 0
    start = time.perf_counter()
    with mailer:
        for message, outcome in mailer.iter_send(build(r, pdf) for r in recs):
            record_outcome(message, outcome)
            failures += isinstance(outcome, DeliveryError)
        elapsed = time.perf_counter() - start
        opened = mailer.connections_opened
    return elapsed, failures, opened


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--pdf-kb", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="SMTP connections of the service's mailer")
    parser.add_argument("--raw-connections", type=int, default=None,
                        help="connections of the raw sender (default: --concurrency)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    raw_connections = args.raw_connections or args.concurrency

    # A real PDF is compressed: random bytes base64-encode the same way.
    pdf = os.urandom(args.pdf_kb * 1024)
    t = time.perf_counter()
    recs = records(args.count)
    jobs = raw_jobs(recs, pdf)
    print(f"set-up: {len(recs)} records parsed, {len(jobs)} raw messages pre-built "
          f"({len(jobs[0][1]) / 1024:.0f} KB each on the wire) in "
          f"{time.perf_counter() - t:.1f} s", flush=True)

    server = ServerProcess()
    try:
        raw_send(server.port, jobs, 200, raw_connections)  # warm-up: imports, first conns
        base, _ = server.count()
        raw_s = raw_send(server.port, jobs, args.count, raw_connections)
        after_raw, _ = server.count()
        service_s, failures, opened = service_send(server.port, recs, pdf, args.concurrency)
        after_service, _ = server.count()
    finally:
        server.stop()

    raw_rate = args.count / raw_s
    service_rate = args.count / service_s
    print(f"(a) raw sender      : {args.count} messages in {raw_s:6.2f} s = "
          f"{raw_rate:7.0f} msg/s  ({raw_connections} connections, pipelined)")
    print(f"(b) service path    : {args.count} messages in {service_s:6.2f} s = "
          f"{service_rate:7.0f} msg/s  (concurrency {args.concurrency}, "
          f"{opened} connections opened, {failures} failures)")
    print(f"ratio service / raw : {service_rate / raw_rate:6.1%}  (target >= 70 %)")
    ok = (after_raw - base == args.count and after_service - after_raw == args.count
          and failures == 0)
    print(f"server counted      : raw {after_raw - base}, service "
          f"{after_service - after_raw}  ({'ok' if ok else 'MISMATCH'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
