"""``delivery_preferences`` on SQLite and PostgreSQL: a choice per row, confirmation
once under any race, supersession, the choice in force at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest


def test_paper_counts_now_and_supersedes_the_previous_choice(led):
    first = led.preferences.add("oi", "1", mode="both", email="a@example.com", via="api",
                                client="10.0.0.1", confirmed_via="test")
    second = led.preferences.add("oi", "1", mode="paper", email=None, via="page",
                                 client=None, confirmed_via="page-session")
    assert (second.state, second.requested_via, second.confirmed_via) == (
        "confirmed", "page", "page-session")
    assert led.preferences.get(first.id).state == "superseded"
    assert [p.id for p in led.preferences.current("oi", "1")] == [second.id]


def test_an_unconfirmed_choice_waits_and_a_newer_one_retires_it(led):
    paper = led.preferences.add("oi", "1", mode="paper", email=None, via="api", client=None,
                                confirmed_via="api-session")
    old = led.preferences.add("oi", "1", mode="electronic", email="a@example.com",
                              via="api", client=None)
    new = led.preferences.add("oi", "1", mode="electronic", email="b@example.com",
                              via="api", client=None)
    assert led.preferences.get(old.id).state == "superseded"
    assert led.preferences.get(paper.id).state == "confirmed"  # stands until confirmed
    assert led.preferences.confirm(old.id, via="email-link") is None
    done = led.preferences.confirm(new.id, via="email-link")
    assert done is not None and done.state == "confirmed" and done.confirmed_at is not None
    assert led.preferences.get(paper.id).state == "superseded"
    assert [p.id for p in led.preferences.current("oi", "1")] == [new.id]


def test_confirmation_is_once_under_a_race(led, race):
    pref = led.preferences.add("oi", "1", mode="both", email="a@example.com", via="page",
                               client=None)
    results = race(8, lambda _: led.preferences.confirm(pref.id, via="email-link"))
    assert sum(r is not None for r in results) == 1


def test_the_choice_in_force_is_the_last_confirmed_before_the_time(led):
    a = led.preferences.add("oi", "1", mode="paper", email=None, via="api", client=None,
                            confirmed_via="api-session")
    b = led.preferences.add("oi", "1", mode="electronic", email="b@example.com", via="api",
                            client=None)
    assert led.preferences.effective("oi", "1", a.confirmed_at - timedelta(seconds=1)) is None
    assert led.preferences.effective("oi", "1", a.confirmed_at).id == a.id
    confirmed = led.preferences.confirm(b.id, via="email-link")
    at = confirmed.confirmed_at
    assert led.preferences.effective("oi", "1", at + timedelta(seconds=1)).id == b.id
    # What counted before b was confirmed still counts for what was claimed then.
    assert led.preferences.effective("oi", "1", at - timedelta(microseconds=1)).id == a.id
    assert led.preferences.effective("oi", "2", at) is None
    assert led.preferences.effective("vivo", "1", at) is None


def test_applied_once(led):
    pref = led.preferences.add("oi", "1", mode="paper", email=None, via="api", client=None,
                               confirmed_via="api-session")
    assert led.preferences.mark_applied(pref.id, "OI-1") is True
    assert led.preferences.mark_applied(pref.id, "OI-2") is False
    assert led.preferences.get(pref.id).applied_invoice == "OI-1"


def test_an_electronic_choice_without_address_is_refused(led):
    with pytest.raises(ValueError):
        led.preferences.add("oi", "1", mode="electronic", email=None, via="api", client=None)
    with pytest.raises(ValueError):
        led.preferences.add("oi", "1", mode="fax", email=None, via="api", client=None)
