"""Operators' self-service settings from their brand files."""

from __future__ import annotations

import base64

from invoicer.operator_settings import DEFAULT_HISTORY, operator_settings


def test_oi_and_carpati_as_their_pages_are():
    oi, carpati = operator_settings("oi"), operator_settings("carpati")
    assert (oi.history, oi.service_owns_preference, oi.name) == (13, True, "Oi")
    assert (carpati.history, carpati.service_owns_preference) == (6, False)
    assert oi.primary == "#00875a" and oi.support_phone.startswith("*144")


def test_an_operator_without_settings_gets_the_defaults():
    for unknown in ("vivo", "../oi", "_neutral", "OI", ""):
        s = operator_settings(unknown)
        assert (s.history, s.preference_owner, s.name, s.logo_data_uri) == (
            DEFAULT_HISTORY, "billing", None, None)
        assert s.primary == "#33475b"


def test_the_logo_is_inlined_as_a_data_uri():
    logo = operator_settings("polder").logo_data_uri
    assert logo.startswith("data:image/png;base64,")
    assert base64.b64decode(logo.split(",", 1)[1]).startswith(b"\x89PNG")
