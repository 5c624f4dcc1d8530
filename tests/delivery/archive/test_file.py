"""The file archive's own promises: read-only objects, metadata in an extended attribute
or a sidecar, atomic writes, translated disk errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
from datetime import date
from pathlib import Path

import pytest

from invoicer.delivery.archive import (
    META_XATTR,
    FileArchive,
    invoice_key,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    PermanentDeliveryError,
)

KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")
PDF = b"%PDF-1.7\n" + b"itemized invoice, page 1 of 1\n" * 200 + b"%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()
META = {"renderer-version": "1.0.0"}


def test_file_objects_are_read_only_and_leave_no_temp_files(tmp_path):
    archive = FileArchive(tmp_path)
    archive.put(KEY, PDF, metadata=META)
    path = tmp_path / KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert os.listdir(path.parent) == [path.name]  # metadata in the attribute, no sidecar


def test_file_metadata_lost_by_a_copy_is_recomputed_and_repaired(tmp_path):
    archive = FileArchive(tmp_path / "a")
    archive.put(KEY, PDF, metadata=META)
    # A plain `cp -r` (no -a / -X) drops extended attributes.
    subprocess.run(["cp", "-r", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    copy = FileArchive(tmp_path / "b")
    with pytest.raises(OSError):
        os.getxattr(copy.root / KEY, META_XATTR)
    info = copy.stat(KEY)
    assert (info.sha256, dict(info.metadata)) == (SHA, {})  # hashed from the bytes
    assert copy.put(KEY, PDF, metadata=META).already_there
    assert copy.stat(KEY).metadata == META  # kept in a sidecar from now on
    path = copy.root / KEY
    assert (path.parent / f".{path.name}.meta.json").is_file()


def test_file_system_without_xattrs_uses_sidecars(tmp_path, monkeypatch):
    # No file system on this machine refuses user attributes; make setxattr answer as
    # one that has none does (vfat, some network mounts).
    def refuse(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    archive = FileArchive(tmp_path)
    assert archive.put(KEY, PDF, metadata=META).created
    assert archive.xattrs is False  # not asked again for the next objects
    path = tmp_path / KEY
    sidecar = json.loads(path.with_name(f".{path.name}.meta.json").read_bytes())
    assert sidecar == {"sha256": SHA, "size": len(PDF), "content_type": "application/pdf",
                       "metadata": META}
    assert archive.stat(KEY).metadata == META
    assert archive.list() == [KEY]
    assert archive.put(KEY, PDF, metadata=META).already_there
    with pytest.raises(ArchiveConflictError):
        archive.put(KEY, PDF + b"x", metadata=META)


def test_file_torn_sidecar_is_ignored_and_rewritten(tmp_path):
    archive = FileArchive(tmp_path, xattrs=False)
    archive.put(KEY, PDF, metadata=META)
    path = tmp_path / KEY
    sidecar = path.with_name(f".{path.name}.meta.json")
    sidecar.write_bytes(sidecar.read_bytes()[:17])  # a crash mid-write
    assert archive.stat(KEY).sha256 == SHA  # hashed from the bytes
    assert archive.put(KEY, PDF, metadata=META).already_there
    assert archive.stat(KEY).metadata == META


def test_file_leftover_temp_file_is_invisible(tmp_path):
    archive = FileArchive(tmp_path)
    folder = tmp_path / "oi/1234567890/2026-10"
    folder.mkdir(parents=True)
    (folder / ".OI-2026-11-0000123.pdf.k3j2.tmp").write_bytes(PDF[:10])  # killed mid-write
    assert archive.list() == []
    assert not archive.exists(KEY)
    assert archive.put(KEY, PDF).created
    assert archive.list() == [KEY]


def test_file_disk_errors_are_translated(tmp_path):
    archive = FileArchive(tmp_path)
    (tmp_path / "oi").write_bytes(b"a file where a folder should be")
    with pytest.raises(PermanentDeliveryError):
        archive.put(KEY, PDF)


def test_unused_path_is_untouched(tmp_path: Path):
    # Opening an archive does no I/O: a URL can be checked before the folder exists.
    archive = FileArchive(tmp_path / "later")
    assert archive.list() == [] and not (tmp_path / "later").exists()


def test_a_killed_attempts_temporaries_are_swept_by_the_next_put(tmp_path):
    """Class (issue 13): leftovers of a killed run stay forever. A temporary of a dead
    process (and one of an earlier process that had our pid) goes with the next put of
    the same object; a live process's temporary stays."""
    import subprocess
    import sys

    from invoicer.delivery import fileurl

    archive = FileArchive(tmp_path)
    archive.put("oi/1/2026-11/N-0.pdf", b"%PDF-1.7 other")  # the folder exists
    folder = tmp_path / "oi" / "1" / "2026-11"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [folder / f".N-1.pdf.{dead}.abcd1234.0.tmp",
             folder / f".N-1.pdf.{os.getpid()}.00000000.3.tmp"]  # our pid, not our token
    live = folder / f".N-1.pdf.{os.getppid()}.abcd1234.0.tmp"
    for path in (*stale, live):
        path.write_bytes(b"half a PDF")
        path.chmod(0o444)
    assert fileurl.TMP_TOKEN != "00000000"
    assert archive.put("oi/1/2026-11/N-1.pdf", b"%PDF-1.7 x").created
    left = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".meta.json"))
    assert left == sorted(["N-0.pdf", "N-1.pdf", live.name]), left


def _count_folder_syncs(monkeypatch) -> list[Path]:
    import invoicer.delivery.archive.file as file_module

    synced: list[Path] = []
    real = file_module.fsync_dir
    monkeypatch.setattr(file_module, "fsync_dir", lambda p: (synced.append(p), real(p))[1])
    return synced


def test_puts_made_durable_together_sync_their_folder_once_when_the_block_ends(
        tmp_path, monkeypatch):
    """An invoice's record and PDF share a folder: synced once, after both are linked
    and before the block returns (the ledger marks the invoice only after it)."""
    synced = _count_folder_syncs(monkeypatch)
    archive = FileArchive(tmp_path)
    record_key = KEY.removesuffix(".pdf") + ".json"
    with archive.together():
        archive.put(record_key, b"{}", metadata=META)
        archive.put(KEY, PDF, metadata=META)
        assert synced == []  # nothing synced inside the block
    folder = (tmp_path / KEY).parent
    # the object's folder, and each new folder's parent, once each, deepest first
    assert synced == [folder, folder.parent, folder.parent.parent, tmp_path]
    assert archive.get(KEY) == PDF and archive.get(record_key) == b"{}"
    synced.clear()
    archive.put(KEY.replace("0000123", "0000124"), PDF)  # outside a block: as it returns
    assert synced == [folder]


def test_a_block_that_fails_still_syncs_what_it_linked_and_raises_its_own_error(
        tmp_path, monkeypatch):
    synced = _count_folder_syncs(monkeypatch)
    archive = FileArchive(tmp_path)
    with pytest.raises(RuntimeError, match="rendering stopped"), archive.together():
        archive.put(KEY, PDF, metadata=META)
        raise RuntimeError("rendering stopped")
    assert (tmp_path / KEY).parent in synced


def test_an_object_found_in_place_is_synced_with_the_block(tmp_path, monkeypatch):
    """A rerun after an attempt stopped between link and sync finds its objects there:
    their folder is synced before the rerun's ledger mark counts on them."""
    archive = FileArchive(tmp_path)
    archive.put(KEY, PDF, metadata=META)
    synced = _count_folder_syncs(monkeypatch)
    with archive.together():
        assert archive.put(KEY, PDF, metadata=META).created is False
    assert synced == [(tmp_path / KEY).parent]
