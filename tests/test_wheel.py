"""The built wheel works on its own: installed into a fresh virtualenv outside the
repository, run from a folder full of decoy modules named like ours.

What this proves: the wheel carries every package and its data (templates, brands,
schemas, migrations) and finds them through ``importlib.resources``, not the checkout;
everything it imports is ``invoicer.*``, so a ``settings.py`` (or ``api.py``,
``worker.py``...) wherever the service runs is never taken for one of ours; and the
console script, ``python -m invoicer``, a bill run and the API's start-up all work.

Bounded: the wheel is built with pip's local index and cache (a few seconds), installed
without its dependencies, and the fresh virtualenv reaches the test environment's
already-installed dependencies through a ``.pth`` line placed after its own
site-packages (a ``--system-site-packages`` venv would see the base interpreter's
packages, not this virtualenv's). The wheel's ``invoicer`` comes first, and the test
checks that it is the one imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES
from tests.support.servers import closed_port

#: Top-level names a careless package would install, and that a working directory may
#: well hold: each decoy stops the process that imports it.
DECOYS = ("settings", "cli", "api", "worker", "ledger", "pipeline", "runner", "backends",
          "billing", "delivery", "renderer", "migrations", "resources", "docs")

#: What never goes into the build: the environment, caches, and what the wheel leaves out.
NOT_BUILT = (".venv", ".git", "var", "build", "dist", "tests", "bench", "samples",
             "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info")


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel built from this checkout, installed into a fresh virtualenv."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT.resolve())
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_BUILT))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
          str(base / "dist"), str(source)], cwd=base, env=env, timeout=300)
    (wheel,) = (base / "dist").glob("invoicer-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base, env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-deps", "--no-index", str(wheel)], cwd=base, env=env)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], cwd=base, env=env).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"venv": venv, "python": python, "site": site, "wheel": wheel}


@pytest.fixture
def decoys(tmp_path: Path) -> Path:
    """A working folder holding a module or package under each name in DECOYS."""
    folder = tmp_path / "work"
    for name in DECOYS:
        stop = f'raise SystemExit("decoy {name} imported from {folder}")\n'
        if name in ("billing", "delivery", "renderer", "migrations", "docs"):
            (folder / name).mkdir(parents=True)
            (folder / name / "__init__.py").write_text(stop)
        else:
            folder.mkdir(exist_ok=True)
            (folder / f"{name}.py").write_text(stop)
    return folder


def _env(decoys: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env["PYTHONPATH"] = str(decoys)  # the decoys are importable in every process
    env["COLUMNS"] = "200"
    return env


def test_the_wheel_imports_only_its_own_names(installed, decoys):
    names = subprocess.run(["unzip", "-Z1", str(installed["wheel"])], capture_output=True,
                           text=True, check=True).stdout.split()
    assert {n.split("/")[0] for n in names} == {"invoicer", "invoicer-0.1.0.dist-info"}
    assert "invoicer/templates/email/invoice_issued/en/body.html" in names
    assert "invoicer/schema/billing-record-1.schema.json" in names
    probe = ("import invoicer, invoicer.cli, invoicer.worker, invoicer.api, sys; "
             "print(invoicer.__file__); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             f"{set(DECOYS)!r}))")
    out = _run([str(installed["python"]), "-c", probe], cwd=decoys,
               env=_env(decoys)).stdout.splitlines()
    assert Path(out[0]).is_relative_to(installed["site"])
    assert out[1] == "[]"


def test_a_bill_run_from_the_wheel(installed, decoys):
    env = _env(decoys)
    run = _run([str(installed["python"]), "-m", "invoicer", "run",
                str(SAMPLES / "invoices.jsonl"), "--workers", "2"],
               cwd=decoys, env=env, timeout=300)
    assert "rendered and archived" in run.stdout
    pdfs = list((decoys / "var" / "archive").rglob("*.pdf"))
    samples = (SAMPLES / "invoices.jsonl").read_bytes().count(b"\n")
    assert len(pdfs) == samples and all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    assert list((decoys / "var" / "outbox").glob("*.eml"))
    assert (decoys / "var" / "sms" / "outbox.jsonl").is_file()
    again = _run([str(installed["venv"] / "bin" / "invoicer"), "run",
                  str(SAMPLES / "invoices.jsonl"), "--workers", "1"],
                 cwd=decoys, env=env, timeout=300)
    assert "already done" in again.stdout


def test_the_api_starts_from_the_wheel_and_answers(installed, decoys):
    port = closed_port()
    server = subprocess.Popen(
        [str(installed["venv"] / "bin" / "invoicer"), "serve", "--port", str(port)],
        cwd=decoys, env=_env(decoys), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 60
        document = None
        while document is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json",
                                            timeout=2) as response:
                    document = json.load(response)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert document is not None, "the API did not answer within 60 s"
        assert document["info"]["title"] == "invoicer"
        with pytest.raises(urllib.error.HTTPError) as refused:  # the ledger is consulted
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/print-shop/batches",
                                   timeout=5)
        assert refused.value.code == 401
        assert refused.value.headers["Content-Type"] == "application/problem+json"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
