"""Writes that commit together (``Ledger.together``): a bill run's batch makes its claims,
then its marks, in one transaction each. On SQLite and PostgreSQL (``led``)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from invoicer.ledger import Ledger


def _commits(ledger: Ledger) -> list[int]:
    seen = [0]

    @sa.event.listens_for(ledger.engine, "commit")
    def _commit(_conn) -> None:
        seen[0] += 1

    return seen


def test_the_block_s_writes_are_one_commit_and_visible_when_it_ends(led: Ledger, facts):
    commits = _commits(led)
    with led.together():
        first = led.invoices.claim("oi", "A-1", **facts())
        led.invoices.claim("oi", "A-2", **facts(account="2"))
        led.invoices.mark_archived(first.invoice.id, sha256="a" * 64, archive_key="k",
                                   renderer_version="1")
        # Not committed yet: another connection does not see them.
        assert led.invoices.get("oi", "A-1") is None
    assert commits[0] == 1
    assert led.invoices.get("oi", "A-1").status == "archived"
    assert led.invoices.get("oi", "A-2").status == "claimed"


def test_an_error_in_the_block_undoes_all_of_it(led: Ledger, facts):
    with pytest.raises(RuntimeError), led.together():
        led.invoices.claim("oi", "A-1", **facts())
        with led.together():  # nested: joins the outer block
            led.invoices.claim("oi", "A-2", **facts(account="2"))
        raise RuntimeError("a later record's step failed")
    assert led.invoices.get("oi", "A-1") is None
    assert led.invoices.get("oi", "A-2") is None
    # The ledger goes on as before: a write outside any block commits on its own.
    led.invoices.claim("oi", "A-1", **facts())
    assert led.invoices.get("oi", "A-1") is not None


def test_another_thread_s_writes_are_not_part_of_the_block(led: Ledger, facts):
    done = threading.Event()

    def elsewhere() -> None:
        led.invoices.claim("oi", "B-1", **facts(account="9"))  # waits for the lock on SQLite
        done.set()

    with pytest.raises(RuntimeError), led.together():
        led.invoices.claim("oi", "A-1", **facts())
        thread = threading.Thread(target=elsewhere)
        thread.start()
        done.wait(0.5)  # PostgreSQL: already committed; SQLite: still waiting
        raise RuntimeError("undo the block")
    thread.join(10)
    assert done.is_set()
    assert led.invoices.get("oi", "A-1") is None
    assert led.invoices.get("oi", "B-1") is not None
