"""Which process holds a delivery in ``sending``, and whether it still lives.

A sender stamps its row with ``host:pid:start`` (the process's start time in clock
ticks since boot, from ``/proc``, so a recycled pid is not mistaken for the sender).
The next run on the same host can then tell a row whose sender was killed (finish
it) from one a live process is sending (leave it). A row of another host cannot be
judged from here: the run says so rather than guess.
"""

from __future__ import annotations

import os
import socket
from functools import cache

__all__ = ["alive", "me"]


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields and fields[0] in (b"Z", b"X"):
        # Killed but not reaped (its parent died too, and whatever adopted it has not
        # waited for it yet): it sends nothing any more, whatever /proc still shows.
        return None
    return fields[19].decode() if len(fields) > 19 else None


@cache
def _host() -> str:
    return socket.gethostname()[:64]


def me() -> str:
    """This process's owner string: read once per process (a forked child is another,
    so it is kept with the pid it was read for). A process's start time never changes:
    reading ``/proc`` for every delivery a bill run starts cost a file open per SMS and
    e-mail for the same answer."""
    global _me
    pid = os.getpid()
    if _me is not None and _me[0] == pid:
        return _me[1]
    start = _start_time(pid)
    stamp = f"{_host()}:{pid}:{start or '-'}"
    if start is not None:  # no /proc (or not now): asked again next time
        _me = (pid, stamp)
    return stamp


_me: tuple[int, str] | None = None


def alive(owner: str) -> bool | None:
    """True if the owner process runs, False if it is certainly gone, None when this
    machine cannot tell (another host, or a malformed stamp)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid_text, start = parts
    if host != _host():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return start == (_start_time(pid) or "-")
    current = _start_time(pid)
    if current is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return start == "-"  # no /proc here: the pid exists, assume it is the sender
    return current == start
