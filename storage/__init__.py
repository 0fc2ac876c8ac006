"""SQLite persistence (sqlite-utils): schema, repository functions, the transition log.

Schema and conventions: storage/SCHEMA.md.

The names below are imported on first use (PEP 562 ``__getattr__``): ``from storage.errors import
StorageError`` (the CLI, at every start) must not load sqlite-utils and the repository, a good part
of a short command's start-up; ``from storage import AsyncStorage`` loads them as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AsyncStorage": "storage.async_storage",
    "open_database": "storage.connection",
    "NotFound": "storage.errors",
    "StorageError": "storage.errors",
    "UnknownOrder": "storage.errors",
    "client_order_id": "storage.ids",
    "TERMINAL_POSITION_STATES": "storage.records",
    "BotStateRow": "storage.records",
    "EventRecord": "storage.records",
    "MachineKind": "storage.records",
    "OrderIntent": "storage.records",
    "OrderPurpose": "storage.records",
    "OrderRow": "storage.records",
    "PositionRecord": "storage.records",
    "PositionTotals": "storage.records",
    "Severity": "storage.records",
    "TimelineRow": "storage.records",
    "TransitionRecord": "storage.records",
    "PENDING": "storage.repository",
    "Storage": "storage.repository",
    "position_totals": "storage.totals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from storage.async_storage import AsyncStorage
    from storage.connection import open_database
    from storage.errors import NotFound, StorageError, UnknownOrder
    from storage.ids import client_order_id
    from storage.records import (
        TERMINAL_POSITION_STATES,
        BotStateRow,
        EventRecord,
        MachineKind,
        OrderIntent,
        OrderPurpose,
        OrderRow,
        PositionRecord,
        PositionTotals,
        Severity,
        TimelineRow,
        TransitionRecord,
    )
    from storage.repository import PENDING, Storage
    from storage.totals import position_totals
