"""Bill runs: one model for every executor.

A run reads one JSON Lines source (a path, ``file://`` or ``s3://``). Whoever executes
it, the CLI's process pool (``runner.py``) or the Celery workers (``worker.py``), it is

    planned    the source cut into chunks of whole lines by the one chunker
               (:mod:`runs.chunks`), one ledger row per chunk   (:mod:`runs.plan`)
    executed   chunk by chunk, each record through ``pipeline.process_record``
               (:mod:`runs.execute`), in any process, any number of times
    counted    per chunk, in the ledger, in the statement that ends it; ``invoicer
               runs`` and ``runs show`` read the same rows for every run

and the executors differ only in how they hand chunks out (a pool's queue, or a task
per chunk on a broker: :mod:`runs.broker`) and whether a chunk waits for a backend
(Celery retries it; the CLI leaves it to the next run of the same file). What dead
workers left behind is found by :mod:`runs.reconcile`.
"""

from invoicer.runs.broker import Broker, enqueue
from invoicer.runs.chunks import CHUNK_BYTES, Chunk, chunk_lines, split_source
from invoicer.runs.execute import ChunkNotFinished, ChunkResult, run_chunk
from invoicer.runs.plan import Plan, plan, planned_chunks
from invoicer.runs.reconcile import reconcile
from invoicer.runs.sources import read_range, source_url

__all__ = ["CHUNK_BYTES", "Broker", "Chunk", "ChunkNotFinished", "ChunkResult", "Plan",
           "chunk_lines", "enqueue", "plan", "planned_chunks", "read_range", "reconcile",
           "run_chunk", "source_url", "split_source"]
