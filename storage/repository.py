"""Repository functions over the bot's SQLite database (synchronous; one writer thread).

Every method that writes more than one row runs inside ``Storage._atomic()``: one
``BEGIN IMMEDIATE`` ... ``COMMIT`` (or a savepoint when the caller already opened a transaction
with ``transaction()``), so it is all-or-nothing. IMMEDIATE takes the write lock up front, under
the busy timeout: a deferred ``BEGIN`` that reads first and writes later fails at once with
"database is locked" (SQLITE_BUSY_SNAPSHOT) when another connection (the operator surface
recording a control request) commits in between, and no busy timeout helps. ``with db.conn:`` is NOT used: under sqlite-utils 4.2 each statement
commits on its own and nothing is batched.

The storage layer never reads the clock: every timestamp is passed in by the caller.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.core.domain import (
    Fill,
    FundingPayment,
    LegSide,
    Liquidity,
    OrderReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from storage.codec import (
    check_ts_ms,
    decimal_to_text,
    from_json,
    iso_utc,
    optional_decimal_to_text,
    optional_iso_utc,
    optional_text_to_decimal,
    text_to_decimal,
    to_json,
)
from storage.connection import open_database, open_database_readonly
from storage.errors import NotFound, StorageError, UnknownOrder
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
from storage.totals import position_totals

WAL_RESTARTS_KEY = "storage.wal_restarts"  # kv: how many times the writer started the log over

PENDING = "pending"  # stored order status before any venue answer is recorded

_POSITION_DECIMALS = frozenset(
    {
        "target_size_base",
        "long_size_base",
        "short_size_base",
        "notional_usd",
        "entry_spread_hourly",
        "entry_apr",
        "entry_expected_net_usd",
        "entry_costs_usd",
        "entry_long_price",
        "entry_short_price",
    }
)
_POSITION_TS_WITH_ISO = {"opened_at_ts_ms": "opened_at_iso", "closed_at_ts_ms": "closed_at_iso"}
_POSITION_INTS = frozenset(
    {
        "opened_at_ts_ms",
        "closed_at_ts_ms",
        "unhedged_ms_entry",
        "unhedged_ms_exit",
        "created_at_ts_ms",
        "updated_at_ts_ms",
    }
)
_POSITION_FIELDS = tuple(f.name for f in dataclass_fields(PositionRecord))
# Fields update_position may change; id and created_at_ts_ms are fixed at insert.
_POSITION_UPDATABLE = frozenset(_POSITION_FIELDS) - {"id", "created_at_ts_ms", "updated_at_ts_ms"}
_UNFINISHED_ORDER_STATUSES = (PENDING, OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)


def _encode_position_field(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _POSITION_DECIMALS:
        return decimal_to_text(value)
    if name in _POSITION_INTS:
        return check_ts_ms(value, name)
    if name == "entry_details":
        return to_json(value)
    if not isinstance(value, str):
        raise StorageError(f"position field {name} must be str, got {type(value).__name__}")
    return value


def _position_columns(position: PositionRecord) -> dict[str, Any]:
    row = {name: _encode_position_field(name, getattr(position, name)) for name in _POSITION_FIELDS}
    for ts_name, iso_name in _POSITION_TS_WITH_ISO.items():
        row[iso_name] = optional_iso_utc(row[ts_name])
    return row


def _position_from_row(row: dict[str, Any]) -> PositionRecord:
    values: dict[str, Any] = {}
    for name in _POSITION_FIELDS:
        raw = row[name]
        if name in _POSITION_DECIMALS:
            values[name] = optional_text_to_decimal(raw)
        elif name == "entry_details":
            values[name] = from_json(raw)
        else:
            values[name] = raw
    return PositionRecord(**values)


def _intent_columns(intent: OrderIntent) -> dict[str, Any]:
    request = intent.request
    ts_ms = check_ts_ms(intent.created_at_ts_ms, "created_at_ts_ms")
    if isinstance(intent.attempt, bool) or not isinstance(intent.attempt, int):
        raise StorageError(f"attempt must be an int, got {intent.attempt!r}")
    return {
        "client_order_id": request.client_order_id,
        "position_id": intent.position_id,
        "venue": request.venue,
        "symbol": request.symbol,
        "side": OrderSide(request.side).value,
        "purpose": OrderPurpose(intent.purpose).value,
        "leg": None if intent.leg is None else LegSide(intent.leg).value,
        "attempt": intent.attempt,
        "size_base": decimal_to_text(request.size_base),
        "order_type": OrderType(request.order_type).value,
        "time_in_force": TimeInForce(request.time_in_force).value,
        "limit_price": optional_decimal_to_text(request.limit_price),
        "reduce_only": 1 if request.reduce_only else 0,
        "post_only": 1 if request.post_only else 0,
        "status": PENDING,
        "filled_base": "0",
        "avg_price": None,
        "venue_order_id": None,
        "reason": None,
        "created_at_ts_ms": ts_ms,
        "created_at_iso": iso_utc(ts_ms),
        "updated_at_ts_ms": ts_ms,
    }


def _order_from_row(row: dict[str, Any]) -> OrderRow:
    request = OrderRequest(
        client_order_id=row["client_order_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        size_base=text_to_decimal(row["size_base"]),
        order_type=OrderType(row["order_type"]),
        limit_price=optional_text_to_decimal(row["limit_price"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        reduce_only=bool(row["reduce_only"]),
        post_only=bool(row.get("post_only", 0)),
    )
    return OrderRow(
        request=request,
        purpose=OrderPurpose(row["purpose"]),
        position_id=row["position_id"],
        leg=None if row["leg"] is None else LegSide(row["leg"]),
        attempt=row["attempt"],
        status=None if row["status"] == PENDING else OrderStatus(row["status"]),
        filled_base=text_to_decimal(row["filled_base"]),
        avg_price=optional_text_to_decimal(row["avg_price"]),
        venue_order_id=row["venue_order_id"],
        reason=row["reason"],
        created_at_ts_ms=row["created_at_ts_ms"],
        updated_at_ts_ms=row["updated_at_ts_ms"],
    )


def _fill_from_row(row: dict[str, Any]) -> Fill:
    return Fill(
        venue=row["venue"],
        symbol=row["symbol"],
        client_order_id=row["client_order_id"],
        trade_id=row["trade_id"],
        side=OrderSide(row["side"]),
        price=text_to_decimal(row["price"]),
        size_base=text_to_decimal(row["size_base"]),
        fee_usd=text_to_decimal(row["fee_usd"]),
        liquidity=Liquidity(row["liquidity"]),
        ts_ms=row["ts_ms"],
        fee_base=text_to_decimal(row.get("fee_base") or "0"),
    )


def _funding_from_row(row: dict[str, Any]) -> FundingPayment:
    return FundingPayment(
        payment_id=row["payment_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        ts_ms=row["ts_ms"],
        rate=text_to_decimal(row["rate"]),
        position_size_base=text_to_decimal(row["position_size_base"]),
        mark_price=text_to_decimal(row["mark_price"]),
        amount_usd=text_to_decimal(row["amount_usd"]),
    )


def _transition_columns(transition: TransitionRecord) -> dict[str, Any]:
    # Duck-typed so machines' own outbox records (``entity`` instead of ``machine``) persist as-is.
    machine = getattr(transition, "machine", None) or getattr(transition, "entity", None)
    if transition.ts_ms is None:
        raise StorageError(f"transition {transition!r} has no ts_ms: stamp it before persisting")
    ts_ms = check_ts_ms(transition.ts_ms)
    return {
        "ts_ms": ts_ms,
        "ts_iso": iso_utc(ts_ms),
        "machine": MachineKind(machine).value,
        "entity_id": transition.entity_id,
        "source": str(getattr(transition.source, "value", transition.source)),
        "dest": str(getattr(transition.dest, "value", transition.dest)),
        "trigger": transition.trigger,
        "reason": transition.reason,
        "details": to_json(dict(transition.details) if transition.details is not None else None),
    }


def _transition_from_row(row: dict[str, Any]) -> TransitionRecord:
    return TransitionRecord(
        ts_ms=row["ts_ms"],
        machine=MachineKind(row["machine"]),
        entity_id=row["entity_id"],
        source=row["source"],
        dest=row["dest"],
        trigger=row["trigger"],
        reason=row["reason"],
        details=from_json(row["details"]),
    )


def _event_columns(event: EventRecord) -> dict[str, Any]:
    ts_ms = check_ts_ms(event.ts_ms)
    return {
        "ts_ms": ts_ms,
        "ts_iso": iso_utc(ts_ms),
        "kind": event.kind,
        "entity_id": event.entity_id,
        "severity": Severity(event.severity).value,
        "message": event.message,
        "details": to_json(event.details),
    }


def _event_from_row(row: dict[str, Any]) -> EventRecord:
    return EventRecord(
        ts_ms=row["ts_ms"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        message=row["message"],
        entity_id=row["entity_id"],
        details=from_json(row["details"]),
    )


_JOURNAL_TABLES = frozenset({"transitions", "positions", "orders"})
_JOURNAL_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # encoded rows: str, int, None


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class Storage:
    """The bot's persistent state. Not thread-safe: use it from one thread (see AsyncStorage)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path) -> "Storage":
        """Open (or create and migrate) the database file at ``path``; an entry journalled but not
        yet normalised (a kill between the two) is materialised first (``replay_entry_journal``)."""
        storage = cls(open_database(path))
        try:
            storage.replay_entry_journal()
        except BaseException:
            storage.close()
            raise
        return storage

    @classmethod
    def open_readonly(cls, path: Path) -> "Storage":
        """Open an existing, already-migrated database read-only (reports, post-mortems)."""
        return cls(open_database_readonly(path))

    @property
    def db(self) -> Database:
        """The underlying sqlite-utils Database (for reports and tests; prefer the methods)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction, or a savepoint inside an open one."""
        conn = self._db.conn
        if conn.in_transaction:
            with self._db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            self._db.rollback()
            raise

    def _insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Plain ``INSERT`` of already-encoded rows (same columns each) in one transaction: the
        hot paths (entry intents, transitions) skip sqlite-utils' per-call table introspection.
        A duplicate primary key raises ``sqlite3.IntegrityError``."""
        if not rows:
            return
        with self._atomic():
            self._execute_insert(table, rows)

    def _execute_insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """The ``INSERT`` of ``_insert_rows`` inside the caller's open transaction."""
        columns = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_placeholders(columns)})"
        self._db.conn.executemany(sql, [[row[c] for c in columns] for row in rows])

    @contextmanager
    def transaction(self) -> Iterator["Storage"]:
        """Group several repository calls into one all-or-nothing transaction."""
        with self._atomic():
            yield self

    # -- positions -------------------------------------------------------------------------

    def insert_position(self, position: PositionRecord) -> None:
        """Insert a new position; raises ``sqlite3.IntegrityError`` if the id exists."""
        self._insert_rows("positions", [_position_columns(position)])

    def upsert_position(self, position: PositionRecord) -> None:
        """Insert the position, or overwrite every column of the existing row with that id."""
        row = _position_columns(position)
        columns = list(row)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in ("id", "created_at_ts_ms")
        )
        self._db.execute(
            f"INSERT INTO positions ({', '.join(columns)}) VALUES ({_placeholders(columns)}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            [row[c] for c in columns],
        )

    def insert_position_with_intents(
        self, position: PositionRecord, intents: Sequence[OrderIntent]
    ) -> None:
        """Persist a new position and its order intents in ONE transaction (before sending)."""
        with self._atomic():
            self.insert_position(position)
            self.insert_order_intents(intents)

    def insert_entry_intent(
        self,
        transitions: Sequence[TransitionRecord],
        position: PositionRecord,
        intents: Sequence[OrderIntent],
    ) -> None:
        """An entry's intent in ONE transaction, one statement per table: its transitions first (a
        post-mortem reads "scanning -> opening" before the orders), the new position row, its
        order intents. The same rows as ``record_transitions`` + ``insert_position_with_intents``,
        encoded before the transaction opens and with no savepoint per table (the entry's orders
        wait for this commit). A duplicate id raises ``sqlite3.IntegrityError``; nothing is written."""
        tables = (("transitions", [_transition_columns(t) for t in transitions]),
                  ("positions", [_position_columns(position)]),
                  ("orders", [_intent_columns(intent) for intent in intents]))
        with self._atomic():
            for table, rows in tables:
                if rows:
                    self._execute_insert(table, rows)

    def journal_entry_intent(
        self,
        transitions: Sequence[TransitionRecord],
        position: PositionRecord,
        intents: Sequence[OrderIntent],
    ) -> tuple[int, list[tuple[str, list[dict[str, Any]]]]]:
        """An entry's intent as ONE journal row in one ``BEGIN IMMEDIATE`` transaction (the cheap
        write an entry's orders wait for): the same rows ``insert_entry_intent`` writes, encoded
        and validated now, stored as one JSON record. ``settle_entry_journal`` writes them as
        normal rows (and deletes the record) once the orders are on their way; ``Storage.open``
        does it for a record a kill left behind. A position id or client order id already on
        record raises ``sqlite3.IntegrityError`` here, before anything is sent, as the normal
        insert would. Returns the journal row id and the encoded rows (for the settle)."""
        tables = [("transitions", [_transition_columns(t) for t in transitions]),
                  ("positions", [_position_columns(position)]),
                  ("orders", [_intent_columns(intent) for intent in intents])]
        tables = [(table, rows) for table, rows in tables if rows]
        payload = _JOURNAL_ENCODER.encode(tables)
        cids = [intent.request.client_order_id for intent in intents]
        conn = self._db.conn
        with self._atomic():
            taken = conn.execute(
                "SELECT 1 FROM positions WHERE id = ? UNION ALL SELECT 1 FROM entry_journal WHERE position_id = ?"
                + "".join(" UNION ALL SELECT 1 FROM orders WHERE client_order_id = ?" for _ in cids),
                [position.id, position.id, *cids]).fetchone()
            if taken is not None:
                raise sqlite3.IntegrityError(f"position {position.id} or one of its client order ids is already on record")
            cursor = conn.execute("INSERT INTO entry_journal (position_id, payload) VALUES (?, ?)",
                                  (position.id, payload))
        return int(cursor.lastrowid), tables

    def settle_entry_journal(self, journal_id: int,
                             tables: Sequence[tuple[str, Sequence[dict[str, Any]]]] | None = None) -> bool:
        """Write a journal row's normal rows and delete it, ONE transaction (``journal_entry_intent``);
        ``tables``: its rows as that call returned them (else read back from the record). False when
        the row was already settled."""
        conn = self._db.conn
        with self._atomic():
            if tables is None:
                row = conn.execute("SELECT payload FROM entry_journal WHERE id = ?", (journal_id,)).fetchone()
                if row is None:
                    return False
                tables = json.loads(row[0])
            if conn.execute("DELETE FROM entry_journal WHERE id = ?", (journal_id,)).rowcount != 1:
                return False
            for table, rows in tables:
                if table not in _JOURNAL_TABLES:
                    raise StorageError(f"entry journal row {journal_id} names table {table!r}")
                self._execute_insert(table, rows)
        return True

    def replay_entry_journal(self) -> int:
        """Materialise every journal row left behind (a kill after an entry's intent was journalled
        and before its normal rows were written): its orders may have been sent, so its position
        and pending orders must be on record for restore to look them up. Returns how many."""
        ids = [row[0] for row in self._db.conn.execute("SELECT id FROM entry_journal ORDER BY id")]
        return sum(1 for journal_id in ids if self.settle_entry_journal(journal_id))

    def pending_entry_journal(self) -> list[str]:
        """Position ids journalled and not yet written as normal rows (tests, diagnostics)."""
        return [row[0] for row in self._db.conn.execute("SELECT position_id FROM entry_journal ORDER BY id")]

    def update_position(
        self, position_id: str, updated_at_ts_ms: int, **changes: Any
    ) -> PositionRecord:
        """Change some fields of a position (names as in ``PositionRecord``); returns the new row.

        Setting ``opened_at_ts_ms`` / ``closed_at_ts_ms`` also sets the ISO companion column.
        Raises ``NotFound`` for an unknown id, ``StorageError`` for an unknown or fixed field.
        """
        unknown = set(changes) - _POSITION_UPDATABLE
        if unknown:
            raise StorageError(f"cannot update position field(s) {sorted(unknown)}")
        row = {name: _encode_position_field(name, value) for name, value in changes.items()}
        row["updated_at_ts_ms"] = check_ts_ms(updated_at_ts_ms, "updated_at_ts_ms")
        for ts_name, iso_name in _POSITION_TS_WITH_ISO.items():
            if ts_name in row:
                row[iso_name] = optional_iso_utc(row[ts_name])
        assignments = ", ".join(f"{name} = ?" for name in row)
        with self._atomic():
            cursor = self._db.execute(
                f"UPDATE positions SET {assignments} WHERE id = ?", [*row.values(), position_id]
            )
            if cursor.rowcount != 1:
                raise NotFound(f"no position {position_id!r}")
            return self._require_position(position_id)

    def update_position_with_transitions(
        self,
        position_id: str,
        updated_at_ts_ms: int,
        transitions: Sequence[TransitionRecord],
        **changes: Any,
    ) -> PositionRecord:
        """``update_position`` and ``record_transitions`` in ONE transaction: a state change and
        its log entries are stored together or not at all."""
        with self._atomic():
            position = self.update_position(position_id, updated_at_ts_ms, **changes)
            self.record_transitions(transitions)
            return position

    def release_spot_dust(
        self, position_id: str, updated_at_ts_ms: int, *, long_size_base: Decimal,
        baseline_key: str, baseline_base: Decimal, dust_key: str, dust_base: Decimal,
    ) -> Decimal:
        """A carry position's spot dust released in ONE transaction: the position's long leg, the
        wallet baseline and the position's released-dust total (``dust_key``, raised by ``dust_base``)
        are stored together or not at all, so a crash can never release the same coins twice.
        Returns the new released-dust total."""
        with self._atomic():
            previous = self.get_kv(dust_key)
            total = dust_base + (text_to_decimal(previous) if previous is not None else Decimal(0))
            self.set_kv(baseline_key, str(baseline_base), updated_at_ts_ms)
            self.set_kv(dust_key, str(total), updated_at_ts_ms)
            self.update_position(position_id, updated_at_ts_ms, long_size_base=long_size_base)
        return total

    def get_position(self, position_id: str) -> PositionRecord | None:
        rows = list(self._db["positions"].rows_where("id = ?", [position_id]))
        return _position_from_row(rows[0]) if rows else None

    def load_open_positions(
        self, terminal_states: Iterable[str] = TERMINAL_POSITION_STATES
    ) -> list[PositionRecord]:
        """Every position not in a terminal state, oldest first (what a restart resumes)."""
        states = sorted(terminal_states)
        where = f"state NOT IN ({_placeholders(states)})" if states else None
        rows = self._db["positions"].rows_where(
            where, states or None, order_by="created_at_ts_ms, id"
        )
        return [_position_from_row(row) for row in rows]

    def list_positions(
        self, states: Iterable[str] | None = None, symbol: str | None = None
    ) -> list[PositionRecord]:
        """Positions, oldest first, optionally filtered by state(s) and symbol."""
        clauses: list[str] = []
        args: list[Any] = []
        if states is not None:
            wanted = sorted(states)
            if not wanted:
                return []
            clauses.append(f"state IN ({_placeholders(wanted)})")
            args.extend(wanted)
        if symbol is not None:
            clauses.append("symbol = ?")
            args.append(symbol)
        rows = self._db["positions"].rows_where(
            " AND ".join(clauses) or None, args or None, order_by="created_at_ts_ms, id"
        )
        return [_position_from_row(row) for row in rows]

    def _require_position(self, position_id: str) -> PositionRecord:
        position = self.get_position(position_id)
        if position is None:
            raise NotFound(f"no position {position_id!r}")
        return position

    # -- orders ----------------------------------------------------------------------------

    def insert_order_intent(self, intent: OrderIntent) -> None:
        """Persist an order BEFORE it is sent (status pending); a duplicate id raises
        ``sqlite3.IntegrityError``."""
        self._insert_rows("orders", [_intent_columns(intent)])

    def insert_order_intents(self, intents: Sequence[OrderIntent]) -> None:
        """Persist several order intents in one transaction."""
        if not intents:
            return
        self._insert_rows("orders", [_intent_columns(intent) for intent in intents])

    def update_order_status(
        self,
        client_order_id: str,
        status: OrderStatus,
        ts_ms: int,
        *,
        filled_base: Decimal | None = None,
        avg_price: Decimal | None = None,
        venue_order_id: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record the venue's answer for an order. None arguments keep the stored value.

        A terminal order never moves to a different status (a late ``new`` report after
        ``filled`` is stale): that call changes nothing and returns False. Raises ``NotFound``
        for an unknown client order id.
        """
        status = OrderStatus(status)
        check_ts_ms(ts_ms)
        with self._atomic():
            found = self._db.execute(
                "SELECT status FROM orders WHERE client_order_id = ?", [client_order_id]
            ).fetchone()
            if found is None:
                raise NotFound(f"no order {client_order_id!r}")
            stored = found[0]
            if stored != PENDING and OrderStatus(stored).is_terminal and stored != status.value:
                return False
            self._db.execute(
                "UPDATE orders SET status = ?, updated_at_ts_ms = ?,"
                " filled_base = COALESCE(?, filled_base), avg_price = COALESCE(?, avg_price),"
                " venue_order_id = COALESCE(?, venue_order_id), reason = COALESCE(?, reason)"
                " WHERE client_order_id = ?",
                [
                    status.value,
                    ts_ms,
                    optional_decimal_to_text(filled_base),
                    optional_decimal_to_text(avg_price),
                    venue_order_id,
                    reason,
                    client_order_id,
                ],
            )
            return True

    def apply_order_report(self, report: OrderReport, ts_ms: int) -> int:
        """Update the order from a venue report and record its fills, atomically.

        Returns how many of the report's fills were new (already-stored trade ids are skipped).
        """
        with self._atomic():
            self.update_order_status(
                report.client_order_id,
                report.status,
                ts_ms,
                filled_base=report.filled_base,
                avg_price=report.avg_price,
                venue_order_id=report.venue_order_id,
                reason=report.reason,
            )
            return self.record_fills(report.fills)

    def get_order(self, client_order_id: str) -> OrderRow | None:
        rows = list(self._db["orders"].rows_where("client_order_id = ?", [client_order_id]))
        return _order_from_row(rows[0]) if rows else None

    def list_orders(self, position_id: str) -> list[OrderRow]:
        """A position's orders in the order they were recorded."""
        rows = self._db["orders"].rows_where("position_id = ?", [position_id], order_by="seq")
        return [_order_from_row(row) for row in rows]

    def load_unfinished_orders(self) -> list[OrderRow]:
        """Orders that are pending (venue answer unknown), new or partially filled: a restart
        must look each of them up on its venue by client order id."""
        statuses = list(_UNFINISHED_ORDER_STATUSES)
        rows = self._db["orders"].rows_where(
            f"status IN ({_placeholders(statuses)})", statuses, order_by="seq"
        )
        return [_order_from_row(row) for row in rows]

    # -- fills -----------------------------------------------------------------------------

    def record_fill(self, fill: Fill) -> bool:
        """Store a fill unless (venue, trade_id) is already stored; True when it was new.

        The fill's order must exist (``UnknownOrder`` otherwise) and match its venue/symbol.
        """
        ts_ms = check_ts_ms(fill.ts_ms)
        with self._atomic():
            order = self._db.execute(
                "SELECT position_id, venue, symbol FROM orders WHERE client_order_id = ?",
                [fill.client_order_id],
            ).fetchone()
            if order is None:
                raise UnknownOrder(
                    f"fill {fill.venue}/{fill.trade_id} for unknown order {fill.client_order_id!r}"
                )
            position_id, venue, symbol = order
            if (venue, symbol) != (fill.venue, fill.symbol):
                raise StorageError(
                    f"fill {fill.trade_id} is {fill.venue}/{fill.symbol} but order "
                    f"{fill.client_order_id} is {venue}/{symbol}"
                )
            cursor = self._db.execute(
                "INSERT INTO fills (venue, trade_id, symbol, client_order_id, position_id, side,"
                " price, size_base, fee_usd, liquidity, ts_ms, ts_iso, fee_base)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (venue, trade_id) DO NOTHING",
                [
                    fill.venue,
                    fill.trade_id,
                    fill.symbol,
                    fill.client_order_id,
                    position_id,
                    OrderSide(fill.side).value,
                    decimal_to_text(fill.price),
                    decimal_to_text(fill.size_base),
                    decimal_to_text(fill.fee_usd),
                    Liquidity(fill.liquidity).value,
                    ts_ms,
                    iso_utc(ts_ms),
                    decimal_to_text(fill.fee_base),
                ],
            )
            return cursor.rowcount == 1

    def record_fills(self, fills: Iterable[Fill]) -> int:
        """Store several fills in one transaction; returns how many were new."""
        with self._atomic():
            return sum(1 for fill in fills if self.record_fill(fill))

    def list_fills(self, position_id: str) -> list[Fill]:
        """A position's fills in time order."""
        rows = self._db["fills"].rows_where("position_id = ?", [position_id], order_by="ts_ms, seq")
        return [_fill_from_row(row) for row in rows]

    def latest_fill_ts_ms(self, venue: str) -> int | None:
        """Timestamp of the newest stored fill on ``venue`` (where reconciliation resumes)."""
        row = self._db.execute("SELECT MAX(ts_ms) FROM fills WHERE venue = ?", [venue]).fetchone()
        return row[0]

    # -- funding ---------------------------------------------------------------------------

    def record_funding_payment(
        self, payment: FundingPayment, position_id: str | None, leg: LegSide | None
    ) -> bool:
        """Store a funding payment unless (venue, payment_id) exists; True when it was new.

        ``position_id``/``leg`` are None only for a venue position no stored position owns.
        """
        ts_ms = check_ts_ms(payment.ts_ms)
        cursor = self._db.execute(
            "INSERT INTO funding_payments (venue, payment_id, position_id, leg, symbol, ts_ms,"
            " ts_iso, rate, position_size_base, mark_price, amount_usd)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (venue, payment_id) DO NOTHING",
            [
                payment.venue,
                payment.payment_id,
                position_id,
                None if leg is None else LegSide(leg).value,
                payment.symbol,
                ts_ms,
                iso_utc(ts_ms),
                decimal_to_text(payment.rate),
                decimal_to_text(payment.position_size_base),
                decimal_to_text(payment.mark_price),
                decimal_to_text(payment.amount_usd),
            ],
        )
        return cursor.rowcount == 1

    def list_funding_payments(self, position_id: str) -> list[FundingPayment]:
        """A position's funding payments in time order."""
        rows = self._db["funding_payments"].rows_where(
            "position_id = ?", [position_id], order_by="ts_ms, seq"
        )
        return [_funding_from_row(row) for row in rows]

    def position_holding_at(self, venue: str, symbol: str, ts_ms: int,
                            clock_slack_ms: int = 0) -> tuple[str, LegSide] | None:
        """The position (id, leg) that held ``symbol`` on ``venue`` at ``ts_ms``, closed ones included:
        created at or before ``ts_ms + clock_slack_ms`` and not closed before ``ts_ms - clock_slack_ms``
        (the newest such position). The slack absorbs the venue's clock being off ours."""
        row = self._db.execute(
            "SELECT id, long_venue FROM positions WHERE symbol = ? AND (long_venue = ? OR short_venue = ?)"
            " AND created_at_ts_ms <= ? AND (closed_at_ts_ms IS NULL OR closed_at_ts_ms >= ?)"
            " ORDER BY created_at_ts_ms DESC, id DESC LIMIT 1",
            [symbol, venue, venue, ts_ms + clock_slack_ms, ts_ms - clock_slack_ms],
        ).fetchone()
        if row is None:
            return None
        return row[0], LegSide.LONG if row[1] == venue else LegSide.SHORT

    def latest_funding_ts_ms(self, venue: str) -> int | None:
        """Timestamp of the newest stored funding payment on ``venue``."""
        row = self._db.execute(
            "SELECT MAX(ts_ms) FROM funding_payments WHERE venue = ?", [venue]
        ).fetchone()
        return row[0]

    def latest_funding_ts_by_venue(self, venues: Sequence[str]) -> dict[str, int | None]:
        """``latest_funding_ts_ms`` of each of ``venues`` in one query (None: no payment stored)."""
        found = dict(self._db.execute(
            "SELECT venue, MAX(ts_ms) FROM funding_payments GROUP BY venue").fetchall())
        return {venue: found.get(venue) for venue in venues}

    # -- transitions and events ------------------------------------------------------------

    def record_transition(self, transition: TransitionRecord) -> None:
        self.record_transitions([transition])

    def record_transitions(self, transitions: Sequence[TransitionRecord]) -> None:
        """Append transitions in one transaction (batch the hot path).

        Also accepts any record with the same attributes that names the machine kind in
        ``entity`` instead of ``machine`` (``machines.records.TransitionRecord``), once stamped.
        """
        if not transitions:
            return
        self._insert_rows("transitions", [_transition_columns(t) for t in transitions])

    def list_transitions(
        self, machine: MachineKind | None = None, entity_id: str | None = None
    ) -> list[TransitionRecord]:
        """Transitions in recorded order, optionally for one machine kind / entity."""
        clauses: list[str] = []
        args: list[Any] = []
        if machine is not None:
            clauses.append("machine = ?")
            args.append(MachineKind(machine).value)
        if entity_id is not None:
            clauses.append("entity_id = ?")
            args.append(entity_id)
        rows = self._db["transitions"].rows_where(
            " AND ".join(clauses) or None, args or None, order_by="seq"
        )
        return [_transition_from_row(row) for row in rows]

    def record_event(self, event: EventRecord) -> int:
        """Append one event; returns its id."""
        with self._atomic():
            table = self._db["events"].insert(_event_columns(event))
            return int(table.last_rowid)

    def record_events(self, events: Sequence[EventRecord]) -> None:
        """Append several events in one transaction."""
        if not events:
            return
        with self._atomic():
            self._db["events"].insert_all([_event_columns(e) for e in events])

    def list_events(
        self,
        kind: str | None = None,
        entity_id: str | None = None,
        since_ts_ms: int | None = None,
    ) -> list[EventRecord]:
        """Events in recorded order, optionally filtered."""
        clauses: list[str] = []
        args: list[Any] = []
        if kind is not None:
            clauses.append("kind = ?")
            args.append(kind)
        if entity_id is not None:
            clauses.append("entity_id = ?")
            args.append(entity_id)
        if since_ts_ms is not None:
            clauses.append("ts_ms >= ?")
            args.append(check_ts_ms(since_ts_ms, "since_ts_ms"))
        rows = self._db["events"].rows_where(
            " AND ".join(clauses) or None, args or None, order_by="seq"
        )
        return [_event_from_row(row) for row in rows]

    # -- bot state and key/value -----------------------------------------------------------

    def set_bot_state(self, state: str, ts_ms: int) -> None:
        """Remember the bot machine's current state (single row)."""
        check_ts_ms(ts_ms)
        self._db.execute(
            "INSERT INTO bot_state (id, state, updated_at_ts_ms, updated_at_iso)"
            " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
            " updated_at_ts_ms = excluded.updated_at_ts_ms,"
            " updated_at_iso = excluded.updated_at_iso",
            [state, ts_ms, iso_utc(ts_ms)],
        )

    def get_bot_state(self) -> BotStateRow | None:
        row = self._db.execute(
            "SELECT state, updated_at_ts_ms FROM bot_state WHERE id = 1"
        ).fetchone()
        return None if row is None else BotStateRow(state=row[0], updated_at_ts_ms=row[1])

    def set_kv(self, key: str, value: str, ts_ms: int) -> None:
        """Store a small text value (e.g. peak equity). Never store secrets here."""
        if not isinstance(value, str):
            raise StorageError(f"kv values are text, got {type(value).__name__}")
        check_ts_ms(ts_ms)
        self._db.execute(
            "INSERT INTO kv (key, value, updated_at_ts_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at_ts_ms = excluded.updated_at_ts_ms",
            [key, value, ts_ms],
        )

    def restart_wal(self, ts_ms: int) -> None:
        """One small write (a counter in ``kv``) after a checkpoint copied the whole log: the
        write starts the log over, and pays its header sync, here (``storage.checkpointer``)."""
        with self._atomic():
            count = int(self.get_kv(WAL_RESTARTS_KEY) or 0) + 1
            self.set_kv(WAL_RESTARTS_KEY, str(count), ts_ms)

    def get_kv(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def kv_with_prefix(self, prefix: str) -> dict[str, str]:
        """Every kv entry whose key starts with ``prefix`` (e.g. the carry engine's spot baselines)."""
        rows = self._db.execute("SELECT key, value FROM kv WHERE substr(key, 1, ?) = ?", [len(prefix), prefix])
        return {r[0]: r[1] for r in rows.fetchall()}

    def set_decimal(self, key: str, value: Decimal, ts_ms: int) -> None:
        """``set_kv`` for an exact Decimal."""
        self.set_kv(key, decimal_to_text(value), ts_ms)

    def get_decimal(self, key: str) -> Decimal | None:
        text = self.get_kv(key)
        return None if text is None else text_to_decimal(text)

    # -- post-mortems ----------------------------------------------------------------------

    def timeline(self, position_id: str) -> list[TimelineRow]:
        """Everything recorded about a position, merged in time order (ties: recording order).

        Orders appear at their intent time with their current status; events are those whose
        ``entity_id`` is the position id.
        """
        sources: list[tuple[str, str, str, str]] = [
            ("transition", "transitions", "machine = 'position' AND entity_id = ?", "ts_ms"),
            ("order", "orders", "position_id = ?", "created_at_ts_ms"),
            ("fill", "fills", "position_id = ?", "ts_ms"),
            ("funding", "funding_payments", "position_id = ?", "ts_ms"),
            ("event", "events", "entity_id = ?", "ts_ms"),
        ]
        merged: list[TimelineRow] = []
        for kind, table, where, ts_column in sources:
            for row in self._db[table].rows_where(where, [position_id]):
                if "details" in row:
                    row["details"] = from_json(row["details"])
                merged.append(
                    TimelineRow(ts_ms=row[ts_column], seq=row["seq"], kind=kind, data=row)
                )
        merged.sort(key=lambda r: (r.ts_ms, r.seq))
        return merged

    def position_totals(self, position_id: str) -> PositionTotals:
        """Funding, fees and (once flat) realized PnL of a position, exact; see PositionTotals."""
        self._require_position(position_id)
        prefix = f"spot_dust:{position_id}:"
        released = {key[len(prefix):]: text_to_decimal(value) for key, value in self.kv_with_prefix(prefix).items()}
        return position_totals(
            position_id, self.list_fills(position_id), self.list_funding_payments(position_id), released
        )

    def run(self, fn: Callable[["Storage"], Any]) -> Any:
        """Call ``fn(self)`` inside one transaction (what ``AsyncStorage.run`` executes)."""
        with self.transaction():
            return fn(self)
