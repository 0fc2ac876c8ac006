"""Tail the bot's journal (the ``events`` and ``transitions`` tables) and publish new rows.

Everything the engine and the application record ends up in those two tables, so reading them
is the one hook the operator surface needs: no callbacks inside the engine. Rows become plain
JSON-ready dicts (``type`` = ``"event"`` or ``"transition"``), merged in recording order.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bot.ops.bus import Bus
from bot.ops.reader import ReadStore
from storage import Storage

POLL_INTERVAL_S = 0.25
BATCH = 1000


@dataclass(slots=True)
class Cursor:
    """The last ``id`` seen in each table."""

    event_id: int = 0
    transition_id: int = 0


def journal_cursor(db_path: Path) -> Cursor:
    """The current end of the journal (0, 0 for a database that does not exist yet)."""
    if not Path(db_path).exists():
        return Cursor()
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True, timeout=5)
    try:
        ids = []
        for table in ("events", "transitions"):
            try:
                ids.append(conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
            except sqlite3.OperationalError:  # a file created by an older version / not migrated yet
                ids.append(0)
        return Cursor(int(ids[0]), int(ids[1]))
    finally:
        conn.close()


def _details(text: str | None) -> Any:
    return None if not text else json.loads(text)


def read_journal(storage: Storage, after: Cursor, limit: int = BATCH) -> tuple[list[dict[str, Any]], Cursor]:
    """Rows recorded after ``after`` (at most ``limit`` per table), merged by ``seq``."""
    conn = storage.db.conn
    events = conn.execute(
        "SELECT id, ts_ms, ts_iso, kind, entity_id, severity, message, details, seq FROM events "
        "WHERE id > ? ORDER BY id LIMIT ?", (after.event_id, limit)).fetchall()
    transitions = conn.execute(
        "SELECT id, ts_ms, ts_iso, machine, entity_id, source, dest, trigger, reason, details, seq FROM transitions "
        "WHERE id > ? ORDER BY id LIMIT ?", (after.transition_id, limit)).fetchall()
    rows: list[dict[str, Any]] = []
    for (id_, ts_ms, ts_iso, kind, entity_id, severity, message, details, seq) in events:
        rows.append({"type": "event", "id": id_, "ts_ms": ts_ms, "at": ts_iso, "kind": kind, "entity_id": entity_id,
                     "severity": severity, "message": message, "details": _details(details), "seq": seq or 0})
    for (id_, ts_ms, ts_iso, machine, entity_id, source, dest, trigger, reason, details, seq) in transitions:
        rows.append({"type": "transition", "id": id_, "ts_ms": ts_ms, "at": ts_iso, "machine": machine,
                     "entity_id": entity_id, "source": source, "dest": dest, "trigger": trigger, "reason": reason,
                     "details": _details(details), "seq": seq or 0})
    rows.sort(key=lambda r: (r["seq"], r["ts_ms"]))
    cursor = Cursor(events[-1][0] if events else after.event_id,
                    transitions[-1][0] if transitions else after.transition_id)
    return rows, cursor


def read_recent(storage: Storage, before: Cursor, count: int) -> list[dict[str, Any]]:
    """The last ``count`` rows up to ``before`` (inclusive), oldest first: history for the page."""
    start = Cursor(max(0, before.event_id - count), max(0, before.transition_id - count))
    rows, _ = read_journal(storage, start, limit=count)
    rows = [r for r in rows if r["id"] <= (before.event_id if r["type"] == "event" else before.transition_id)]
    return rows[-count:]


class JournalTail:
    """Polls the journal every 0.25 s wall time; keeps the last ``keep`` rows and publishes new ones."""

    def __init__(self, reader: ReadStore, bus: Bus, start: Cursor, keep: int) -> None:
        self.reader = reader
        self.bus = bus
        self.cursor = start
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._primed = False

    async def prime(self) -> None:
        """Load recent history (not published: it is not news) up to the start cursor."""
        if not self._primed:
            start = self.cursor
            self.recent.extend(await self.reader.call(lambda s: read_recent(s, start, self.recent.maxlen or 0)))
            self._primed = True

    async def poll(self) -> int:
        """Publish every row recorded since the last poll; returns how many."""
        await self.prime()
        rows, self.cursor = await self.reader.call(lambda s: read_journal(s, self.cursor))
        for row in rows:
            self.recent.append(row)
            self.bus.publish(row)
        return len(rows)

    async def run(self) -> None:
        while True:
            while await self.poll() >= BATCH:
                pass
            await anyio.sleep(POLL_INTERVAL_S)
