"""A chunk on the workers: an unexpected error of a record sends the chunk back to the
queue for a few attempts (it may be the process's, e.g. a connection a signal left
mid-statement), then fails it for a person; the CLI's single pass fails it at once."""

from __future__ import annotations

import json

import pytest

from invoicer.delivery.archive import MemoryArchive
from invoicer.ledger import Ledger
from invoicer.pipeline import Services
from invoicer.runs import ChunkNotFinished, run_chunk
from invoicer.runs.execute import INTERNAL_ATTEMPTS
from invoicer.runs.plan import plan
from tests.conftest import SPEC_EXAMPLE


class FlakyArchive(MemoryArchive):
    """A real in-memory archive whose first ``failures`` puts raise what no backend
    should: an unexpected error, as a broken connection would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def put(self, key, data, **kwargs):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("connection left mid-statement")
        return super().put(key, data, **kwargs)


def _one_chunk_run(tmp_path, failures: int):
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.migrate()
    src = tmp_path / "run.jsonl"
    src.write_text(json.dumps(SPEC_EXAMPLE) + "\n", encoding="utf-8")
    run = ledger.runs.start(str(src))
    plan(ledger, run, str(src), chunk_lines=10)
    return ledger, run, Services(ledger=ledger, archive=FlakyArchive(failures))


def test_an_unexpected_error_is_retried_on_the_workers_then_finishes(tmp_path):
    ledger, run, services = _one_chunk_run(tmp_path, failures=1)
    with pytest.raises(ChunkNotFinished, match="connection left mid-statement"):
        run_chunk(run, 0, services, retry=True)
    assert ledger.runs.chunks(run)[0].state == "queued"
    assert ledger.runs.rejects(run) == []
    done = run_chunk(run, 0, services, retry=True)
    assert done.state == "done" and done.counts()["archived"] == 1


def test_an_error_that_repeats_fails_the_chunk_after_the_attempts(tmp_path):
    ledger, run, services = _one_chunk_run(tmp_path, failures=10**6)
    for _ in range(INTERNAL_ATTEMPTS - 1):
        with pytest.raises(ChunkNotFinished):
            run_chunk(run, 0, services, retry=True)
    last = run_chunk(run, 0, services, retry=True)
    assert last.state == "failed" and "internal" in last.error
    assert ledger.runs.chunks(run)[0].attempts == INTERNAL_ATTEMPTS


def test_the_cli_pass_fails_the_chunk_at_once(tmp_path):
    _, run, services = _one_chunk_run(tmp_path, failures=1)
    assert run_chunk(run, 0, services, retry=False).state == "failed"
