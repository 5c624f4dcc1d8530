"""The world of a Celery worker test: the bill run to enqueue and what it must produce
(:func:`make_run`), and :class:`Harness`: worker subprocesses' environment, the ledger,
the SMTP server, and the checks of what reached each peer. Fixtures in ``conftest.py``."""

from __future__ import annotations

import collections
import email
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from invoicer.billing import parse_record
from invoicer.billing.synthetic import write_jsonl
from invoicer.ledger import Ledger
from invoicer.workflows.dispatch import route
from tests.support.servers import SmtpServer
from tests.worker.conftest import ROOT, Celery

# Timeouts scaled down so that recovery happens within a test; they still pass the
# start-up check (time limit + backoff + 30 s margin < redelivery window).
TIMEOUTS = {"INVOICER_TASK_TIME_LIMIT": "12", "INVOICER_RETRY_BACKOFF_MAX": "3",
            "INVOICER_MAX_RETRIES": "6", "INVOICER_BROKER_VISIBILITY_TIMEOUT": "60",
            "INVOICER_BROKER_CONSUMER_TIMEOUT": "60", "INVOICER_STALE_AFTER": "18",
            "INVOICER_RECONCILE_EVERY": "2", "INVOICER_CHUNK_LINES": "8"}


def make_run(path: Path, count: int, bad_every: int = 0, seed: int = 9) -> dict:
    """Generated records, every ``bad_every``-th broken; what the run must produce."""
    gen = path.with_suffix(".gen")
    with open(gen, "w", encoding="utf-8") as out:
        write_jsonl(out, count, 6, seed)
    lines = gen.read_text(encoding="utf-8").splitlines()
    bad = set()
    if bad_every:
        for i in range(bad_every - 1, len(lines), bad_every):
            rec = json.loads(lines[i])
            rec["totals"]["total_due"] = "0.01"  # does not reconcile
            lines[i] = json.dumps(rec, ensure_ascii=False)
            bad.add(i + 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    emails = sms = 0
    for n, line in enumerate(lines, start=1):
        if n in bad:
            continue
        channels = route(parse_record(line.encode())).channels
        emails += "email" in channels
        sms += "sms" in channels
    return {"valid": count - len(bad), "bad_lines": sorted(bad), "emails": emails,
            "sms": sms}


class Harness:
    """One test's world: env for the subprocesses, the ledger, the SMTP server."""

    def __init__(self, tmp_path: Path, broker: str, pg_url: str, smtp: SmtpServer,
                 archive_url: str) -> None:
        self.tmp = tmp_path
        self.smtp = smtp
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "INVOICER_BROKER_URL": broker,
                    "INVOICER_DB_URL": pg_url, "INVOICER_ARCHIVE_URL": archive_url,
                    "INVOICER_MAIL_URL": smtp.url, "INVOICER_MAIL_FROM": "bills@oi.test",
                    "INVOICER_SMS_URL": f"file://{tmp_path}/sms",
                    "INVOICER_LINK_SECRET": "worker-tests-link-secret-0123456789abcdef", **TIMEOUTS}
        self.env.pop("CELERY_BROKER_URL", None)
        self.celery = Celery(self.env, tmp_path)
        self.ledger = Ledger.from_url(pg_url)
        self.ledger.migrate()

    def cli(self, *args: str, timeout: float = 60,
            env_update: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoicer", *args],
                              env={**self.env, **(env_update or {})}, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def enqueue(self, source: str) -> int:
        result = self.cli("enqueue", source)
        assert result.returncode == 0, result.stdout + result.stderr
        return int(result.stdout.split()[1])

    def archived(self) -> int:
        with self.ledger.engine.connect() as conn:
            return conn.execute(sa.text(
                "select count(*) from invoices where status = 'archived'")).scalar()

    def wait_finished(self, run_ids: list[int], timeout: float) -> None:
        """Until every run is finished and no e-mail or SMS is left to send."""
        deadline = time.monotonic() + timeout
        while True:
            progress = [self.ledger.reports.run_progress(r) for r in run_ids]
            with self.ledger.engine.connect() as conn:
                open_deliveries = conn.execute(sa.text(
                    "select count(*) from deliveries where channel in ('email', 'sms') "
                    "and state in ('pending', 'sending')")).scalar()
            if all(p.finished for p in progress) and not open_deliveries:
                return
            if time.monotonic() > deadline:
                logs = {n: self.celery.log(n)[-3000:] for n in self.celery.workers}
                pytest.fail(f"runs not finished in {timeout} s: "
                            f"{[(p.chunks, p.run.expected) for p in progress]}, "
                            f"{open_deliveries} deliveries open; logs: {logs}")
            time.sleep(0.5)

    def message_ids(self) -> collections.Counter:
        ids = collections.Counter()
        for _, _, content in list(self.smtp.handler.received):
            ids[email.message_from_bytes(content)["Message-ID"]] += 1
        return ids

    def check_exactly_once(self, expected: dict, run_ids: list[int]) -> None:
        """Every valid record archived once, one e-mail and SMS each, nothing open."""
        with self.ledger.engine.connect() as conn:
            invoices = conn.execute(sa.text(
                "select status, sha256, archive_key from invoices")).all()
            states = dict(conn.execute(sa.text(
                "select channel || ':' || state, count(*) from deliveries "
                "group by channel, state")).all())
            rejects = conn.execute(sa.text(
                "select line, count(*) from rejects group by line order by line")).all()
            chunks = dict(conn.execute(sa.text(
                "select state, count(*) from run_chunks group by state")).all())
        if len(invoices) != expected["valid"]:
            with self.ledger.engine.connect() as conn:
                odd = conn.execute(sa.text(
                    "select seq, first_line, lines, state, attempts, last_error "
                    "from run_chunks where state <> 'done' or attempts > 1")).all()
            pytest.fail(f"{len(invoices)} invoices for {expected['valid']} valid records; "
                        f"chunks {chunks}, not done or retried: {odd}; worker logs: "
                        f"{ {n: self.celery.log(n)[-2000:] for n in self.celery.workers} }")
        if {s for s, _, _ in invoices} != {"archived"}:
            with self.ledger.engine.connect() as conn:
                stuck = conn.execute(sa.text(
                    "select number, run_id, source_line, updated_at from invoices "
                    "where status <> 'archived'")).all()
                chunk_rows = conn.execute(sa.text(
                    "select seq, first_line, lines, state, attempts, last_error, updated_at "
                    "from run_chunks order by seq")).all()
            lines = {n: [ln for ln in self.celery.log(n).splitlines()
                         if any(str(r[0]) in ln for r in stuck)] for n in self.celery.workers}
            pytest.fail(f"not archived: {stuck}; chunks: "
                        f"{[c for c in chunk_rows if c.attempts > 1 or c.state != 'done']}; "
                        f"logs: {lines}")
        assert set(chunks) == {"done"}, chunks  # 0 chunks left in a non-terminal state
        assert [line for line, _ in rejects] == expected["bad_lines"]
        assert all(n == 1 for _, n in rejects), "a bad record was dead-lettered twice"
        # A sender SIGKILLed after handing the message data to the server (between
        # the ledger's hand-off mark and its "sent") may or may not have delivered it:
        # the reconciler makes it ``unknown`` for a person, never sends it again.
        unknown = states.get("email:unknown", 0)
        assert states.get("email:sent", 0) + unknown == expected["emails"], states
        # (print:pending is the print queue, waiting for a print batch: terminal here)
        assert not any(k.endswith((":pending", ":sending")) for k in states
                       if not k.startswith("print:")), states
        assert "sms:unknown" not in states, states
        ids = self.message_ids()
        with self.ledger.engine.connect() as conn:
            sent_ids = set(conn.execute(sa.text(
                "select message_id from deliveries where channel = 'email' "
                "and state = 'sent'")).scalars())
            unknown_ids = set(conn.execute(sa.text(
                "select message_id from deliveries where channel = 'email' "
                "and state = 'unknown' and handed_off_at is not null "
                "and last_error like '%after handing%may have been delivered%'")).scalars())
        assert len(unknown_ids) == unknown, "an unknown e-mail without a hand-off mark"
        # 0 duplicates: no Message-ID reached the server twice; every sent one is there
        # once, an unknown one at most once.
        copies = {i: n for i, n in ids.items() if n > 1}
        assert not copies, f"e-mails received more than once: {copies}"
        assert sent_ids <= set(ids) <= sent_ids | unknown_ids
        self.unknown_emails = unknown
        sms_file = self.tmp / "sms" / "outbox.jsonl"
        sms = sms_file.read_text(encoding="utf-8").splitlines() if expected["sms"] else []
        refs = collections.Counter(json.loads(s)["reference"] for s in sms)
        assert len(refs) == expected["sms"] == states.get("sms:sent", 0)
        assert sum(refs.values()) == len(refs), "duplicate SMS"
        return invoices
