"""The ``invoicer`` command line: validate, schema and samples."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from invoicer.billing.schema import json_schema_text
from invoicer.cli import app
from tests.conftest import SPEC_EXAMPLE

runner = CliRunner()
GOOD = json.dumps(SPEC_EXAMPLE, ensure_ascii=False)


def test_validate_all_valid_exits_zero(tmp_path):
    src = tmp_path / "run.jsonl"
    src.write_text(GOOD + "\n" + GOOD + "\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(src)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "2" in result.output
    assert not (tmp_path / "run.jsonl.rejected.jsonl").exists()


def test_validate_dead_letters_rejects_and_exits_one(tmp_path):
    bad = dict(SPEC_EXAMPLE, totals=dict(SPEC_EXAMPLE["totals"], charges="1.00"))
    hostile = dict(SPEC_EXAMPLE, invoice=dict(SPEC_EXAMPLE["invoice"], number="[bold]x/y"))
    src = tmp_path / "run.jsonl"
    src.write_text("\n".join([GOOD, "{not json", json.dumps(bad), json.dumps(hostile)]) + "\n",
                   encoding="utf-8")
    result = runner.invoke(app, ["validate", str(src)])
    assert result.exit_code == 1
    assert "totals.charges" in result.output and "OI-2026-11-0000123" in result.output
    assert "[bold]x/y" in result.output  # printed literally, not as Rich markup
    dead = [json.loads(x) for x in
            (tmp_path / "run.jsonl.rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["line"] for d in dead] == [2, 3, 4]
    assert [d["path"] for d in dead] == ["", "totals.charges", "invoice.number"]
    assert dead[0]["raw"] == "{not json"
    assert json.loads(dead[1]["raw"]) == bad  # kept exactly, ready to fix and re-run


def test_validate_custom_rejects_path_and_missing_file(tmp_path):
    src = tmp_path / "run.jsonl"
    src.write_text("[]\n", encoding="utf-8")
    out = tmp_path / "dead.jsonl"
    assert runner.invoke(app, ["validate", str(src), "--rejects", str(out)]).exit_code == 1
    assert json.loads(out.read_text())["reason"] == "not_object"
    assert runner.invoke(app, ["validate", str(tmp_path / "nope.jsonl")]).exit_code == 2


def test_schema_command_prints_the_published_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.output == json_schema_text()


def test_installed_console_script_runs():
    # The README's commands use the console script, so check it is installed and wired.
    proc = subprocess.run([sys.executable, "-m", "invoicer", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "validate" in proc.stdout
    proc = subprocess.run(["invoicer", "schema"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["title"] == "billing-record/1.1"


def test_option_defaults_are_printed_in_the_help():
    # Rich reads "[default: ...]" written into a help text as a markup tag and drops it
    # ("Processes ."): the defaults are given to typer, which prints them itself.
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert ("Processes. [default: (INVOICER_WORKERS, or one per core (+1 with remote "
            "backends))]") in result.output
    result = runner.invoke(app, ["validate", "--help"], env={"COLUMNS": "200"})
    assert "[default: (FILE.rejected.jsonl)]" in result.output


def test_config_shows_the_default_ledger_as_the_relative_path_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INVOICER_DB_URL", raising=False)
    from invoicer.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["config"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0
    assert ("sqlite:///var/ledger.db (./var/ledger.db, relative to the working directory)"
            in result.output)
    assert "sqlite:/var" not in result.output


def test_samples_generate_writes_einvoice_business_records(tmp_path):
    out = tmp_path / "einvoices.jsonl"
    result = runner.invoke(app, ["samples", "generate", "--count", "400", "--cdrs", "2",
                                 "--einvoice", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    formats = {r["delivery"]["einvoice"]["format"] for r in records
               if "einvoice" in r["delivery"]}
    assert formats >= {"ro-cius", "factur-x"}
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    assert runner.invoke(app, ["samples", "generate", "--einvoice", "2"]).exit_code == 2
