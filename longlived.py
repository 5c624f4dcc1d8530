"""What a process keeps for its whole life, kept out of the garbage collector's way.

A bill run's or a worker's process holds a few hundred thousand objects from its start
(modules, the fonts' tables, the ledger's statements and pools, templates) and makes
millions of short-lived ones while rendering. Python's full collections walk every
object each time: measured in one process of ``invoicer run``, 0.9-1.9 ms CPU a record
went to collecting, most of it full collections over objects that never die; with them
frozen, 0.24 ms (docs/performance.md, round 5). The API's workers were the first to
need it (round 3 there).
"""

from __future__ import annotations

import gc

__all__ = ["freeze"]


def freeze() -> None:
    """Collect once, then move every object that survived into the permanent generation:
    no later collection walks them again.

    Call it when a process has built what it keeps (after start-up; in a pool's parent
    right before it forks, so that a child's collections never touch, and copy, the
    pages it shares with the parent). Nothing that would be freed is kept: reference
    counting frees as before; only cycles among start-up's objects wait for ever.
    """
    gc.collect()
    gc.freeze()
