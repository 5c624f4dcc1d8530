"""The file outbox: one .eml per Message-ID, whatever the races."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from invoicer.delivery.email import (
    DEFAULT_MAIL_URL,
    FileMailer,
    Mailer,
    SendResult,
    mailer_from_url,
    message_id,
    outbox_name,
)
from tests.support.mails import (
    BR,
    PDF,
    build,
    parse,
)


def test_file_outbox_is_idempotent_per_message_id(tmp_path):
    mailer = mailer_from_url(f"file://{tmp_path}/outbox")
    assert isinstance(mailer, FileMailer) and isinstance(mailer, Mailer)
    first = mailer.send(build())
    again = mailer.send(build())  # rebuilt: other boundaries and Date, same Message-ID
    assert first.created and not again.created
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [outbox_name(first.message_id)]
    stored = parse(files[0].read_bytes())
    assert stored["Message-ID"] == first.message_id
    assert next(stored.iter_attachments()).get_content() == PDF
    resend = mailer.send(build(message_id=message_id("oi", BR.invoice.number, 1,
                                                     "mail.oi.example")))
    assert resend.created and len(list((tmp_path / "outbox").iterdir())) == 2


def test_file_outbox_race_leaves_one_file(tmp_path):
    mailer = FileMailer(tmp_path)
    messages = [build() for _ in range(16)]
    barrier = threading.Barrier(len(messages))
    results: list[SendResult] = []

    def send(m):
        barrier.wait()
        results.append(mailer.send(m))

    threads = [threading.Thread(target=send, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len(list(tmp_path.iterdir())) == 1  # and no temp file left behind


def test_outbox_names_are_safe():
    assert outbox_name("<a/b@c>") == "a%2Fb@c.eml"
    assert outbox_name("<../../etc/passwd@x>").startswith("%2E.%2F")
    long = outbox_name("<" + "x" * 500 + "@y>")
    assert len(long) < 255 and long != outbox_name("<" + "x" * 499 + "@y>")
    assert DEFAULT_MAIL_URL == "file://var/outbox"
    assert FileMailer.from_url("file://var/outbox").root == Path("var/outbox").absolute()


def test_a_message_without_message_id_is_refused(tmp_path):
    msg = build()
    del msg["Message-ID"]
    with pytest.raises(ValueError, match="Message-ID"):
        FileMailer(tmp_path).send(msg)


def test_a_killed_writers_temp_files_go_before_the_next_mailers_first_write(tmp_path):
    """Temp files of a process that is gone (and of an earlier process that had this
    one's pid, and old mkstemp names over an hour old) are removed by the next mailer
    on the folder; a live process's, or a young mkstemp one, stay."""
    import os
    import subprocess
    import sys
    import time

    from invoicer.delivery import fileurl

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [tmp_path / f".{dead}.abcd1234.0.tmp",
             tmp_path / f".{os.getpid()}.00000000.3.tmp",  # our pid, not our token
             tmp_path / ".k3j2_x9q.tmp"]  # tempfile.mkstemp's, from before
    live = [tmp_path / f".{os.getppid()}.abcd1234.0.tmp", tmp_path / ".a1b2c3d4.tmp",
            tmp_path / "notes.tmp"]
    for path in (*stale, *live):
        path.write_bytes(b"half a message")
    an_hour_ago = time.time() - 3700
    os.utime(stale[2], (an_hour_ago, an_hour_ago))
    assert fileurl.TMP_TOKEN != "00000000"
    result = FileMailer(tmp_path).send(build())
    assert result.created
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([Path(result.reply).name, *(p.name for p in live)]), left


def test_outbox_files_are_private_and_the_folder_is_made_when_missing(tmp_path):
    mailer = FileMailer(tmp_path / "a" / "outbox")
    result = mailer.send(build())
    path = Path(result.reply)
    assert result.created and path == mailer.path_for(result.message_id)
    assert str(path) == str(tmp_path / "a" / "outbox" / outbox_name(result.message_id))
    assert path.stat().st_mode & 0o777 == 0o600  # as tempfile.mkstemp made them
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    again = mailer.send(build())
    assert not again.created and again.reply == result.reply
