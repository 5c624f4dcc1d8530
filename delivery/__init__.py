"""Transports: how invoices leave the service. One package per transport.

    archive/    immutable, checksummed objects: file://, s3://, in memory
    email/      templated MIME messages; mailers: file:// outbox, smtp(s)://, in memory
    sms/        notices per locale, GSM segmentation; gateways: file://, http(s)://,
                memory://; delivery receipts

Each transport is a small Protocol (``Archive.put``, ``Mailer.send``,
``SmsGateway.send``), backends picked by URL, and an in-memory fake shipped beside the
real backends. Shared by all: the error tree every backend raises (``errors``), the
in-process retry with backoff (``retry``), ``file://`` URLs and the scheme -> backend
lookup (``fileurl``), S3 clients made one way (``s3``), signed download links
(``links``). Transports know nothing of the ledger or the pipeline: the workflows
(dispatch, print batches, second copies) call them.

Packages are imported on their own (``invoicer.delivery.archive``,
``invoicer.delivery.sms``) so that using one transport never imports another's vendor
library.
"""
