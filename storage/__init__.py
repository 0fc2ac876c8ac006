"""SQLite persistence (sqlite-utils): schema, repository functions, the transition log.

Schema and conventions: storage/SCHEMA.md.
"""

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

__all__ = [
    "PENDING",
    "TERMINAL_POSITION_STATES",
    "AsyncStorage",
    "BotStateRow",
    "EventRecord",
    "MachineKind",
    "NotFound",
    "OrderIntent",
    "OrderPurpose",
    "OrderRow",
    "PositionRecord",
    "PositionTotals",
    "Severity",
    "Storage",
    "StorageError",
    "TimelineRow",
    "TransitionRecord",
    "UnknownOrder",
    "client_order_id",
    "open_database",
    "position_totals",
]
