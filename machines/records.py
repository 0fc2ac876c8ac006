"""The transition record a machine appends to its outbox on every state change."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One state change of one machine, ready to persist and log.

    The machine never reads the clock: ``ts_ms`` is ``None`` until the async shell stamps it
    (``record.stamped(clock.now_ms())``) when it persists the record. ``source``/``dest`` are the
    state enums' string values. ``details`` holds the caller's details plus, for positions, a
    snapshot of the leg sizes (``Decimal`` values: serialize with ``default=str``).
    """

    entity: str  # "position" or "bot"
    entity_id: str
    source: str
    dest: str
    trigger: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    ts_ms: int | None = None

    def stamped(self, ts_ms: int) -> TransitionRecord:
        """A copy with the persistence time set."""
        return replace(self, ts_ms=ts_ms)
