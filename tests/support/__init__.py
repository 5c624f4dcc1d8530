"""Helpers the tests share: real protocol peers (``servers``)."""
