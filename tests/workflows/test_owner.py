"""Telling a killed sender from a live one, on this machine and no other."""

from __future__ import annotations

import socket
import subprocess
import time

from invoicer.workflows import owner


def test_this_process_is_alive_and_a_finished_one_is_gone():
    assert owner.alive(owner.me()) is True
    child = subprocess.Popen(["sleep", "30"])
    with open(f"/proc/{child.pid}/stat", "rb") as f:
        stat = f.read()
    start = stat[stat.rfind(b")") + 2:].split()[19].decode()
    stamp = f"{socket.gethostname()}:{child.pid}:{start}"
    assert owner.alive(stamp) is True
    child.kill()
    child.wait()
    assert owner.alive(stamp) is False


def test_a_recycled_pid_is_not_the_sender():
    host, pid, start = owner.me().rsplit(":", 2)
    assert owner.alive(f"{host}:{pid}:{int(start) + 1}") is False


def test_another_machine_or_a_malformed_stamp_cannot_be_judged():
    _, pid, start = owner.me().rsplit(":", 2)
    assert owner.alive(f"another-host:{pid}:{start}") is None
    assert owner.alive("garbage") is None
    assert owner.alive("host:notapid:1") is None


def test_a_killed_sender_nobody_has_reaped_yet_is_gone():
    """Class: a SIGKILLed sender whose parent died too stays a zombie until whatever
    adopted it waits for it (on some machines, never): /proc still lists it with its
    start time, yet it sends nothing. Seen as rows left ``sending`` after kill -9 of a
    whole run in a fresh CI machine."""
    child = subprocess.Popen(["sleep", "30"])
    with open(f"/proc/{child.pid}/stat", "rb") as f:
        stat = f.read()
    start = stat[stat.rfind(b")") + 2:].split()[19].decode()
    stamp = f"{socket.gethostname()}:{child.pid}:{start}"
    child.kill()
    try:
        for _ in range(200):  # until the kernel has made it a zombie (not reaped)
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        else:
            raise AssertionError("the killed child never became a zombie")
        assert owner.alive(stamp) is False
    finally:
        child.wait()
