"""Getting invoices out: archive (file, S3), and later e-mail, SMS and print batches.

Modules are imported on their own (``delivery.archive``, ``delivery.errors``) so that
using one backend never imports another's vendor library.
"""
