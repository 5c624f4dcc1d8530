"""FastAPI's native OpenTelemetry: off unless ``INVOICER_API_OPENTELEMETRY`` says so."""

from __future__ import annotations

from invoicer.api import build_app
from invoicer.settings import Settings


def test_fastapis_opentelemetry_is_off_by_default_and_can_be_turned_on(monkeypatch):
    monkeypatch.delenv("INVOICER_API_OPENTELEMETRY", raising=False)
    assert Settings().api_opentelemetry is False
    off = build_app()._telemetry
    assert (off["tracing"], off["metrics"], off["logs"]) == (False, False, False)
    monkeypatch.setenv("INVOICER_API_OPENTELEMETRY", "true")
    assert Settings().api_opentelemetry is True
    on = build_app(opentelemetry=True)._telemetry
    assert (on["tracing"], on["metrics"], on["logs"]) == (True, True, True)
