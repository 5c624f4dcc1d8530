"""The workflows' tests run against the transports' real peers: moto's S3 server and
aiosmtpd on loopback (the fixtures of ``tests/delivery/conftest.py``, shared here)."""

from tests.delivery.conftest import (  # noqa: F401  (fixtures, re-exported here)
    _smtp_server_module,
    aws_env,
    bucket,
    moto_endpoint,
    s3_admin,
    smtp_server,
)
