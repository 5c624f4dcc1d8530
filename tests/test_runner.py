"""The one-machine bill run: resumable, idempotent, every record accounted for.

These run the real thing: `invoicer run` processes in a process pool, a SQLite ledger
and a file archive under tmp_path, killed with SIGKILL where the issue asks for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from invoicer.billing.synthetic import write_jsonl
from tests.conftest import SAMPLES


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp_path}/ledger.db",
            "INVOICER_ARCHIVE_URL": f"file://{tmp_path}/archive"}


def _run(tmp_path: Path, src: Path, *args: str, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "invoicer", "run", str(src), *args],
                          env=_env(tmp_path), capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "ledger.db")


def _run_counts(tmp_path: Path, run_id: int) -> Counter[str]:
    """A run's outcomes as the ledger counted them, chunk by chunk."""
    with _db(tmp_path) as db:
        rows = db.execute("select outcomes from run_chunks where run_id = ? and state in "
                          "('done', 'failed')", (run_id,)).fetchall()
    return sum((Counter(json.loads(r[0] or "{}")) for r in rows), Counter())


def _archived(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "archive"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.pdf")}


def _bill_run_file(tmp_path: Path, count: int, bad_every: int = 0, seed: int = 3) -> Path:
    """Generated records, with every ``bad_every``-th line broken in a known way."""
    src = tmp_path / "run.jsonl"
    gen = tmp_path / "gen.jsonl"
    with open(gen, "w", encoding="utf-8") as out:
        write_jsonl(out, count, 8, seed)
    lines = gen.read_text(encoding="utf-8").splitlines()
    if bad_every:
        for i in range(bad_every - 1, len(lines), bad_every):
            rec = json.loads(lines[i])
            rec["totals"]["total_due"] = "0.01"  # does not reconcile
            lines[i] = json.dumps(rec, ensure_ascii=False)
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


def _sample_count() -> int:
    return len((SAMPLES / "invoices.jsonl").read_bytes().split(b"\n")) - 1


def test_samples_run_then_rerun_redoes_nothing(tmp_path):
    count = _sample_count()
    first = _run(tmp_path, SAMPLES / "invoices.jsonl", "--workers", "2")
    assert first.returncode == 0, first.stderr
    assert "rendered and archived" in first.stdout and str(count) in first.stdout
    pdfs = _archived(tmp_path)
    assert len(pdfs) == count
    with _db(tmp_path) as db:
        rows = db.execute("select archive_key, sha256, status from invoices").fetchall()
    assert len(rows) == count and {r[2] for r in rows} == {"archived"}
    for key, sha, _ in rows:
        assert hashlib.sha256(pdfs[key]).hexdigest() == sha
        canonical = (tmp_path / "archive" / key).with_suffix(".json")
        assert json.loads(canonical.read_bytes())["invoice"]["number"] in key

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "archive").rglob("*.pdf")}
    again = _run(tmp_path, SAMPLES / "invoices.jsonl", "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten


def test_repeats_and_rejects_in_one_file(tmp_path):
    lines = (SAMPLES / "invoices.jsonl").read_bytes().splitlines()
    bad = json.loads(lines[1])
    bad["totals"]["charges"] = "0.00"
    bad["invoice"]["number"] = "BAD-1"
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join([lines[0], lines[2], lines[0], b"{oops",
                                json.dumps(bad).encode(), lines[2]]) + b"\n")
    result = _run(tmp_path, src, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "repeated in the file" in result.stdout
    assert len(_archived(tmp_path)) == 2
    with _db(tmp_path) as db:
        rejects = db.execute("select line, reason, path from rejects order by line").fetchall()
    assert rejects == [(4, "not_json", ""), (5, "reconciliation", "totals.charges")]
    counts = _run_counts(tmp_path, 1)
    assert counts == {"archived": 2, "repeated": 2, "rejected": 2}

    # Running the same file again dead-letters nothing twice.
    _run(tmp_path, src, "--workers", "1")
    with _db(tmp_path) as db:
        assert db.execute("select count(*) from rejects").fetchone()[0] == 2


def test_sigkill_mid_run_then_resume_archives_everything_once(tmp_path):
    count, bad_every = 240, 12
    src = _bill_run_file(tmp_path, count, bad_every)
    proc = subprocess.Popen([sys.executable, "-m", "invoicer", "run", str(src), "--workers", "2"],
                            env=_env(tmp_path), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill at a random point once some invoices have landed (bounded wait).
    target = random.Random(os.getpid()).randint(10, count // 2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((tmp_path / "archive").rglob("*.pdf"))) >= target:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool children, no cleanup
    proc.wait(timeout=30)
    partial = len(_archived(tmp_path))
    assert 0 < partial < count - count // bad_every, "the kill did not land mid-run"

    resumed = _run(tmp_path, src, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    pdfs = _archived(tmp_path)
    valid = count - count // bad_every
    assert len(pdfs) == valid
    with _db(tmp_path) as db:
        rows = db.execute("select archive_key, sha256, status from invoices").fetchall()
        rejects = db.execute("select line, count(*) from rejects group by line").fetchall()
    assert len(rows) == valid and {r[2] for r in rows} == {"archived"}
    assert all(hashlib.sha256(pdfs[key]).hexdigest() == sha for key, sha, _ in rows)
    assert sorted(line for line, _ in rejects) == list(range(bad_every, count + 1, bad_every))
    assert all(n == 1 for _, n in rejects)  # each invalid line dead-lettered once
    # A killed write leaves ``.{name}.{pid}.{token}.{n}.tmp``; the rerun's write of the
    # same object sweeps it. One may stay only where the kill fell between the link and
    # the unlink, i.e. beside the finished object it became.
    leftovers = list((tmp_path / "archive").rglob(".*.tmp"))
    orphans = [p for p in leftovers
               if not p.with_name(p.name[1:].rsplit(".", 4)[0]).exists()]
    assert not orphans, f"temporary files of objects never archived: {orphans}"


def test_config_masks_secrets(tmp_path):
    env = {**_env(tmp_path), "INVOICER_DB_URL": "postgresql://billing:s3cret@db:5432/ledger",
           "INVOICER_LINK_SECRET": "hush-hush", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "invoicer", "config"], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    assert "s3cret" not in out and "billing:***@db" in out and "hush-hush" not in out
    assert "INVOICER_ARCHIVE_URL" in out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_exit_status_is_zero_with_rejects(tmp_path, workers):
    src = tmp_path / "r.jsonl"
    src.write_text("not json\n", encoding="utf-8")
    result = _run(tmp_path, src, "--workers", workers)
    assert result.returncode == 0 and "rejected" in result.stdout


def test_no_deliver_then_a_rerun_delivers_once(tmp_path):
    env_mail = {"INVOICER_MAIL_URL": f"file://{tmp_path}/outbox",
                "INVOICER_SMS_URL": f"file://{tmp_path}/sms"}
    env = {**_env(tmp_path), **env_mail}
    src = SAMPLES / "invoices.jsonl"
    cmd = [sys.executable, "-m", "invoicer", "run", str(src), "--workers", "2"]
    first = subprocess.run([*cmd, "--no-deliver"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert len(_archived(tmp_path)) == _sample_count() and not (tmp_path / "outbox").exists()
    for _ in range(2):  # the deferred delivery, then a repeat that must send nothing
        again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stderr
    emails = list((tmp_path / "outbox").glob("*.eml"))
    sms = (tmp_path / "sms" / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    with _db(tmp_path) as db:
        sent = dict(db.execute("select channel, count(*) from deliveries "
                               "where state = 'sent' group by channel").fetchall())
    # 13 of the 1.0 samples and all 5 e-invoice samples have an e-mail address.
    assert len(emails) == sent["email"] == 18 and len(sms) == sent["sms"] == 9


def test_runs_shows_a_cli_run_as_it_shows_a_workers_run(tmp_path):
    """Three records, three archived: the run's progress comes from the same chunks
    and counts as a Celery run's (the Celery half: tests/worker/test_worker.py)."""
    src = tmp_path / "three.jsonl"
    src.write_bytes(b"".join((SAMPLES / "invoices.jsonl").read_bytes().splitlines(
        keepends=True)[:3]))
    env = {**_env(tmp_path), "COLUMNS": "200", "INVOICER_CHUNK_LINES": "2"}
    result = subprocess.run([sys.executable, "-m", "invoicer", "run", str(src), "--workers",
                             "2"], env=env, capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = subprocess.run([sys.executable, "-m", "invoicer", "runs"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if "three.jsonl" in line]
    assert "3/3" in row and "finished" in row and "0/?" not in row
    shown = subprocess.run([sys.executable, "-m", "invoicer", "runs", "show", "1"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "run 1: 3 of 3 records" in shown.stdout and "finished" in shown.stdout
    assert "splitting" not in shown.stdout
    assert re.search(r"done\s+│\s+2\s+│\s+3", shown.stdout), shown.stdout  # 2 chunks
    assert re.search(r"archived\s+│\s+3", shown.stdout), shown.stdout
    assert _run_counts(tmp_path, 1) == {"archived": 3}


def test_an_interrupted_run_says_what_it_left(tmp_path):
    """Ctrl-C: chunks in flight finish, the rest are ended failed, saying why; the run
    is finished, and the same file run again completes the work."""
    count = 60
    src = _bill_run_file(tmp_path, count)
    env = {**_env(tmp_path), "INVOICER_CHUNK_LINES": "4"}
    proc = subprocess.Popen([sys.executable, "-m", "invoicer", "run", str(src),
                             "--workers", "2"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((tmp_path / "archive").rglob("*.pdf"))) >= 8:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the CLI and its pool
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    with _db(tmp_path) as db:
        finished = db.execute("select finished_at from runs where id = 1").fetchone()[0]
        states = dict(db.execute("select state, count(*) from run_chunks where run_id = 1 "
                                 "group by state").fetchall())
        errors = {r[0] for r in db.execute("select last_error from run_chunks where "
                                           "run_id = 1 and state = 'failed'")}
    assert finished is not None and states.get("done", 0) >= 2, states
    assert set(states) <= {"done", "failed"} and states.get("failed"), states
    assert all("interrupted" in e for e in errors)
    again = _run(tmp_path, src, "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert len(_archived(tmp_path)) == count
    assert sum(_run_counts(tmp_path, 2).values()) == count


def test_a_long_run_goes_on_in_fresh_pools_and_counts_every_record(tmp_path, monkeypatch):
    # Every chunk in a pool of its own (the pools are replaced to keep a long run's
    # memory flat): nothing lost or done twice across the replacements.
    from invoicer import runner
    from invoicer.settings import Settings

    monkeypatch.setattr(runner, "CHUNKS_PER_POOL", 1)
    src = _bill_run_file(tmp_path, 40, bad_every=10)
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    settings = Settings(chunk_lines=4)
    summary = runner.run_file(src, settings, workers=2, deliver=False)
    assert summary.outcomes == Counter(archived=36, rejected=4)
    assert not summary.interrupted and not summary.unread
    assert _run_counts(tmp_path, summary.run_id) == Counter(archived=36, rejected=4)
    assert len(_archived(tmp_path)) == 36
    with _db(tmp_path) as db:
        assert db.execute("select finished_at is not null from runs where id = ?",
                          (summary.run_id,)).fetchone() == (1,)


def test_only_a_run_in_its_own_process_freezes_what_the_process_holds(tmp_path):
    """``invoicer run`` freezes its start-up objects out of the garbage collector's way;
    a run inside a process that lives on (the API's bill-run thread) must not: frozen
    objects that later form cycles would never be collected there."""
    import gc

    from invoicer.runner import run_file
    from invoicer.settings import Settings

    src = tmp_path / "two.jsonl"
    with src.open("w", encoding="utf-8") as out:
        write_jsonl(out, 2, cdrs=3, seed=5)
    settings = Settings(db_url=f"sqlite:///{tmp_path}/l.db",
                        archive_url=f"file://{tmp_path}/archive")
    frozen = gc.get_freeze_count()
    try:
        assert run_file(src, settings, workers=1, deliver=False).records == 2
        assert gc.get_freeze_count() == frozen
        assert run_file(src, settings, workers=1, deliver=False,
                        own_process=True).records == 2
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
