"""The e-mail tests' own fixture: a DKIM key pair."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    """An RSA key pair: the private PEM, and the public key as DNS would publish it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public
