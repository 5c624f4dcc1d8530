"""Workflows: what happens to an archived invoice, beside the pipeline.

    dispatch      deliver per the subscriber's preference, each channel exactly once
    printing      paper invoices into print batches, batches into print files, to the shop
    second_copy   an archived invoice re-issued with the duplicate mark, once

Each is plain functions over the ledger's stores and the transports (``delivery/``) and
the renderer; the entry points (CLI, API, worker) and the pipeline call them. Nothing
here knows which entry point it runs under.
"""
