"""The service as an ordinary user: the file archive and a whole bill run.

Class of failure covered (issue 13, "Runs as an ordinary user"): *works only as root*.
The file archive made each object read-only and then set its metadata attribute, which
the kernel refuses to a non-root owner: every record failed. These tests run the
archive and ``invoicer run`` (render, archive, ledger, e-mail and SMS outboxes) as an
unprivileged user with its own temporary folder: directly when the suite runs as one
(``.ci/run --unprivileged``), else through ``runuser -u nobody`` when it runs as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where this interpreter's packages are (a venv's, a pyenv's, Debian's dist-packages).
SITE = sysconfig.get_paths()["purelib"]


def _as_user(tmp: Path) -> list[str]:
    """The command prefix that runs a Python with this project as an unprivileged user,
    and the interpreter to use (the suite's own when that user can read it; else the
    system's Python 3 with this venv's packages: /root is private)."""
    if os.geteuid() != 0:
        return [sys.executable]
    if not shutil.which("runuser"):
        pytest.fail("running as root without runuser: cannot test as an ordinary user")
    probe = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "0"],
                           capture_output=True, timeout=30)
    python = sys.executable if probe.returncode == 0 else "/usr/bin/python3"
    version = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c",
                              "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    if version != str(tuple(sys.version_info[:2])):
        pytest.fail(f"no Python {sys.version_info[:2]} that nobody may run ({python}: "
                    f"{version or 'not runnable'})")
    # The project is imported as `invoicer` from a folder of its own holding a link to
    # the checkout (the editable install's finder lives in root's venv).
    (tmp / "path").mkdir()
    (tmp / "path" / "invoicer").symlink_to(ROOT)
    site = _readable_site(tmp, python)
    return ["runuser", "-u", "nobody", "--", "env", f"HOME={tmp}", f"TMPDIR={tmp}",
            f"PYTHONPATH={tmp / 'path'}:{site}", python]


def _readable_site(tmp: Path, python: str) -> Path:
    """This interpreter's packages as the unprivileged user can import them.

    When the suite's packages live under a private folder (CI installs into a pyenv under
    /root, which is 0700), the user cannot even reach them: the tree is linked (hard links,
    instant on one file system; else copied) into a folder the user can traverse."""
    probe = f"import sys; sys.path.insert(0, {SITE!r}); import pydantic, typer"
    if subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", probe],
                      capture_output=True, timeout=60).returncode == 0:
        return Path(SITE)
    site = tmp.parent / "site-packages"
    if not site.exists():
        linked = subprocess.run(["cp", "-al", SITE, str(site)], capture_output=True)
        if linked.returncode != 0:
            shutil.rmtree(site, ignore_errors=True)
            subprocess.run(["cp", "-a", SITE, str(site)], check=True, timeout=600)
    return site


@pytest.fixture
def user_tmp(tmp_path: Path) -> Iterator[Path]:
    """A folder the unprivileged user owns.

    As root, outside pytest's own temporary folders: those are private to root, and any
    pytest session starting meanwhile (another job on the machine) sets
    /tmp/pytest-of-root back to 0700, which made the user's imports fail at random."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="invoicer-unprivileged-"))
    try:
        os.chmod(base, 0o755)
        own = base / "own"
        own.mkdir()
        shutil.chown(own, "nobody", "nogroup" if _has_group("nogroup") else "nobody")
        yield own
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_the_file_archive_works_for_an_ordinary_user(user_tmp):
    """Class: works only as root (the archive's attribute set after the chmod)."""
    script = textwrap.dedent(f"""
        import os
        assert os.geteuid() != 0
        from invoicer.delivery.archive import FileArchive
        a = FileArchive({str(user_tmp / "archive")!r})
        assert a.put("oi/1/2026-11/N-1.pdf", b"%PDF-1.7 x").created
        assert not a.put("oi/1/2026-11/N-1.pdf", b"%PDF-1.7 x").created
        assert a.get("oi/1/2026-11/N-1.pdf") == b"%PDF-1.7 x"
        assert a.stat("oi/1/2026-11/N-1.pdf").content_type == "application/pdf"
        path = {str(user_tmp / "archive" / "oi" / "1" / "2026-11" / "N-1.pdf")!r}
        assert os.stat(path).st_mode & 0o777 == 0o444
        sidecars = [n for n in os.listdir(os.path.dirname(path)) if n != "N-1.pdf"]
        print("OK", a.xattrs, sidecars)
    """)
    done = subprocess.run([*_as_user(user_tmp), "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=user_tmp)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr


def test_a_bill_run_works_for_an_ordinary_user(user_tmp):
    """Class: works only as root, over the whole run: every record rendered, archived,
    recorded, e-mailed and notified by SMS as an unprivileged user."""
    src = user_tmp / "run.jsonl"
    lines = (ROOT / "samples" / "invoices.jsonl").read_bytes().splitlines()[:3]
    src.write_bytes(b"\n".join(lines) + b"\n")
    if os.geteuid() == 0:
        shutil.chown(src, "nobody")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    done = subprocess.run([*_as_user(user_tmp), "-m", "invoicer", "run", str(src),
                           "--workers", "2"], capture_output=True, text=True, timeout=300,
                          cwd=user_tmp, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout, done.stdout
    pdfs = list((user_tmp / "var" / "archive").rglob("*.pdf"))
    assert len(pdfs) == 3
    assert all(p.stat().st_uid == os.stat(user_tmp).st_uid for p in pdfs)
    assert list((user_tmp / "var" / "outbox").glob("*.eml"))
    assert (user_tmp / "var" / "link-secret").stat().st_mode & 0o777 == 0o600
