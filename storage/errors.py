"""Errors raised by the storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """A value or operation the storage layer refuses (bad type, schema too new, ...)."""


class NotFound(StorageError, LookupError):
    """The row the caller named does not exist (unknown position id, client order id, ...)."""


class UnknownOrder(NotFound):
    """A fill arrived for a client order id with no stored order intent.

    During reconciliation this is a finding to report (an order this bot never recorded),
    not something to paper over.
    """
