"""Logs: JSON lines or text, masked everywhere (message, traceback, extra fields), with
the run and the invoice; the same set-up through uvicorn's dictConfig."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from invoicer.logs import configure_logging, log_context, logging_config


@pytest.fixture
def root():
    """The root logger, restored afterwards."""
    logger = logging.getLogger()
    saved = (logger.handlers[:], logger.level)
    yield logger
    logger.handlers[:], logger.level = saved[0], saved[1]


def _lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_json_lines_carry_context_and_no_personal_data(root, capsys):
    configure_logging("json", "INFO")
    log = logging.getLogger("invoicer.test")
    with log_context(run_id=7, chunk=2):
        with log_context(line=12, invoice="OI-2026-11-0000123"):
            log.info("sent to %s", "maria.souza@example.com", extra={"to": "+5521987654321"})
        try:
            raise ValueError("bad phone +5521987654321")
        except ValueError:
            log.exception("failed for joe@example.org")
    log.warning("outside")
    first, second, third = (json.loads(line) for line in _lines(capsys))
    assert first["message"] == "sent to m***@example.com" and first["to"] == "+55*********21"
    assert (first["run_id"], first["chunk"], first["line"], first["invoice"]) == (
        7, 2, 12, "OI-2026-11-0000123")
    assert first["level"] == "INFO" and first["logger"] == "invoicer.test"
    assert first["ts"].endswith("Z")
    assert "invoice" not in second and second["run_id"] == 7  # the inner context ended
    assert "ValueError" in second["exc_info"] and "987654" not in second["exc_info"]
    assert "joe@" not in second["message"]
    assert "run_id" not in third


def test_text_for_a_terminal(root, capsys):
    configure_logging("text", "WARNING")
    log = logging.getLogger("invoicer.test")
    with log_context(run_id=3, invoice="OI-1"):
        log.warning("to maria@example.com")
        log.info("not shown at WARNING")
    (line,) = _lines(capsys)
    assert line.endswith("WARNING invoicer.test [run 3 invoice OI-1]: to m***@example.com")


def test_uvicorns_dict_config_is_the_same_masked_json(root, capsys):
    logging.config.dictConfig(logging_config("json", "INFO"))
    logging.getLogger("uvicorn.error").info("client +5521987654321 connected")
    (line,) = _lines(capsys)
    record = json.loads(line)
    assert record["logger"] == "uvicorn.error"
    assert record["message"] == "client +55*********21 connected"
