"""Ledger revisions, one file each, applied in order by ``Ledger.migrate()``."""
