"""``invoicer serve``'s app (``api.served_app``): a worker process's garbage collector
tuned for serving once the app is built."""

from __future__ import annotations

import os
import subprocess
import sys

from invoicer.api import GC_GEN0_THRESHOLD


def test_a_serving_process_freezes_its_start_up_and_collects_young_objects_less_often(
        tmp_path):
    code = ("import gc\nfrom invoicer.api import served_app\n"
            "before = gc.get_threshold()\napp = served_app()\n"
            "print(before[0], gc.get_threshold()[0], gc.get_freeze_count() > 10_000,"
            " type(app).__name__)")
    env = {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
           "INVOICER_ARCHIVE_URL": f"file://{tmp_path / 'archive'}",
           "INVOICER_SMS_URL": f"file://{tmp_path / 'sms'}",
           "INVOICER_MAIL_URL": f"file://{tmp_path / 'outbox'}",
           "INVOICER_LINK_SECRET": "s" * 48}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ["700", str(GC_GEN0_THRESHOLD), "True", "FastAPI"]
