"""`invoicer validate` and `invoicer run` over hostile lines: every line processed or
dead-lettered with a reason, the good records of the same file done, exit status as
for any rejected line, no traceback, and the same on a rerun.

Class of failure covered (issue 13): *an exception escapes the reader or the pipeline*
(a line nested a thousand levels deep crashed both commands on every run; a valid
record that cannot be rendered failed again on every run, never dead-lettered).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLES

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp_path}/ledger.db",
            "INVOICER_ARCHIVE_URL": f"file://{tmp_path}/archive",
            "INVOICER_MAIL_URL": f"file://{tmp_path}/outbox",
            "INVOICER_SMS_URL": f"file://{tmp_path}/sms", "COLUMNS": "300"}


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoicer", *args],
                          env={**_env(tmp_path), **(env or {})},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def _hostile_file(tmp_path: Path) -> Path:
    good = (SAMPLES / "invoices.jsonl").read_bytes().splitlines()[:2]
    # Valid, but a 15-digit call duration cannot be laid out: the renderer refuses it.
    doc = json.loads(good[0])
    doc["invoice"]["number"] += "X"
    doc["services"][0]["usage"][0]["duration_s"] = 10**15
    unrenderable = json.dumps(doc).encode()
    surrogate = json.loads(good[1])
    surrogate["invoice"]["number"] += "Y"
    surrogate["account"]["customer"]["name"] = "\ud800"
    src = tmp_path / "hostile.jsonl"
    big = json.dumps({"padding": "x" * 100_000}).encode()  # rejected, past 64 KiB
    src.write_bytes(b"\n".join([good[0], DEEP, json.dumps(surrogate).encode(), unrenderable,
                                b"\xff\xfe{}", good[1], big]) + b"\n")
    return src


def test_validate_lists_every_hostile_line_and_goes_on(tmp_path):
    src = _hostile_file(tmp_path)
    done = _cli(tmp_path, "validate", str(src))
    assert "Traceback" not in done.stderr and done.returncode == 1, done.stderr
    dead = [json.loads(line) for line in
            (tmp_path / "hostile.jsonl.rejected.jsonl").read_text("utf-8").splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [(2, "too_deep"), (3, "text"),
                                                         (5, "not_utf8"), (7, "missing")]


def test_run_dead_letters_them_archives_the_rest_and_reruns_the_same(tmp_path):
    src = _hostile_file(tmp_path)
    for attempt in range(2):
        done = _cli(tmp_path, "run", str(src), "--workers", "1")
        assert done.returncode == 0, (attempt, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert "rejected" in done.stdout
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            reasons = db.execute("select line, reason from rejects order by line").fetchall()
        # Dead-lettered once per line of the file, however often it runs.
        assert reasons == [(2, "too_deep"), (3, "text"), (4, "unrenderable"),
                           (5, "not_utf8"), (7, "missing")], attempt
    pdfs = list((tmp_path / "archive").rglob("*.pdf"))
    assert len(pdfs) == 2  # the two good records, once
    # The operator sees the dead letters, and where the whole of a long line is.
    shown = _cli(tmp_path, "runs", "show", "1", env={"COLUMNS": "400"})
    rows = {r.split("│")[1].strip(): r for r in shown.stdout.splitlines()
            if r.count("│") > 4 and r.split("│")[1].strip().isdigit()}
    assert "too_deep" in rows["2"]
    kept = tmp_path / "var" / "rejects" / "run-1-line-7.jsonl"
    assert "whole line in var/rejects/run-1-line-7.jsonl" in rows["7"]
    assert kept.read_bytes() == src.read_bytes().splitlines()[6]
