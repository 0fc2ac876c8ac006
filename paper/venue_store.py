"""Durable state of the simulated venues, in their OWN SQLite file, separate from the bot's database.

Keeping it separate is what makes a crash between a venue fill and the bot recording it a real,
recoverable gap, exactly as with a live venue. The file sits next to the bot's database
(``venue_store_path_for``), uses WAL with synchronous=NORMAL (survives kill -9), and stores every
Decimal as TEXT. Each ``write`` is ONE transaction: an order's row, its fills and the position and
balance changes land together or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bot.core.domain import (
    Fill,
    FundingPayment,
    Liquidity,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    VenuePosition,
)
from storage.connection import PAGE_CACHE_KIB
from storage.db_check import VENUE_APPLICATION_ID, check_venue_file
from storage.instance_lock import InstanceLock

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS venue_orders (
    venue TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    venue_order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    limit_price TEXT,
    requested_base TEXT NOT NULL,
    filled_base TEXT NOT NULL,
    status TEXT NOT NULL,
    reduce_only INTEGER NOT NULL,
    reason TEXT,
    created_ts_ms INTEGER NOT NULL,
    updated_ts_ms INTEGER NOT NULL,
    post_only INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (venue, client_order_id)
);
CREATE TABLE IF NOT EXISTS venue_fills (
    venue TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    size_base TEXT NOT NULL,
    fee_usd TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (venue, trade_id)
);
CREATE INDEX IF NOT EXISTS venue_fills_by_ts ON venue_fills (venue, ts_ms);
CREATE INDEX IF NOT EXISTS venue_fills_by_order ON venue_fills (venue, client_order_id);
CREATE TABLE IF NOT EXISTS venue_positions (
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    size_base TEXT NOT NULL,
    entry_price TEXT NOT NULL,
    realized_pnl_usd TEXT NOT NULL,
    updated_ts_ms INTEGER NOT NULL,
    PRIMARY KEY (venue, symbol)
);
CREATE TABLE IF NOT EXISTS venue_balances (
    venue TEXT PRIMARY KEY,
    balance_usd TEXT NOT NULL,
    starting_usd TEXT NOT NULL,
    realized_pnl_usd TEXT NOT NULL,
    fees_usd TEXT NOT NULL,
    funding_usd TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS venue_funding (
    payment_id TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    rate TEXT NOT NULL,
    position_size_base TEXT NOT NULL,
    mark_price TEXT NOT NULL,
    amount_usd TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS venue_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """A paper venue's order record (fills are stored separately, keyed by client order id)."""

    venue: str
    client_order_id: str
    venue_order_id: str
    seq: int  # per-venue arrival order: time priority of resting orders
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    requested_base: Decimal  # effective quantity (after any reduce-only clamp)
    filled_base: Decimal
    status: OrderStatus
    reduce_only: bool
    reason: str | None
    created_ts_ms: int
    updated_ts_ms: int
    post_only: bool = False  # fills only when the market trades through its price (see paper.executor)

    @property
    def remaining_base(self) -> Decimal:
        return self.requested_base - self.filled_base


@dataclass(frozen=True, slots=True)
class PositionState:
    """Signed net position on one venue/symbol with its average entry and lifetime realized PnL."""

    venue: str
    symbol: str
    size_base: Decimal
    entry_price: Decimal
    realized_pnl_usd: Decimal
    updated_ts_ms: int


@dataclass(frozen=True, slots=True)
class BalanceState:
    """Cash balance of one venue: starting + realized PnL - fees + funding."""

    venue: str
    balance_usd: Decimal
    starting_usd: Decimal
    realized_pnl_usd: Decimal
    fees_usd: Decimal
    funding_usd: Decimal


@dataclass(frozen=True, slots=True)
class VenueWrite:
    """Everything one venue event changes; ``VenueStore.write`` applies it in one transaction."""

    orders: tuple[StoredOrder, ...] = ()
    fills: tuple[Fill, ...] = ()
    positions: tuple[PositionState, ...] = ()
    balances: tuple[BalanceState, ...] = ()
    funding: tuple[FundingPayment, ...] = ()
    counters: tuple[tuple[str, int], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.orders or self.fills or self.positions or self.balances or self.funding or self.counters)


@dataclass(slots=True)
class VenueState:
    """Everything in the store, as loaded on open. Orders by (venue, seq), fills in insertion order."""

    orders: list[StoredOrder] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[PositionState] = field(default_factory=list)
    balances: list[BalanceState] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


def venue_store_path_for(bot_db_path: str | Path) -> Path:
    """The venue file that belongs to a bot database: ``<dir>/<stem>.venues.sqlite``."""
    p = Path(bot_db_path)
    return p.with_name(f"{p.stem}.venues.sqlite")


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _txt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class VenueStore:
    """The paper venues' SQLite file. One connection, one writer (guarded by a lock), synchronous writes.

    Use ``VenueStore.open(path)`` for a file or ``VenueStore.in_memory()`` for tests and benchmarks.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        self._instance_lock: InstanceLock | None = None
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(venue_orders)")}
        if "post_only" not in columns:  # a file written before post-only orders existed
            conn.execute("ALTER TABLE venue_orders ADD COLUMN post_only INTEGER NOT NULL DEFAULT 0")
        fill_columns = {row[1] for row in conn.execute("PRAGMA table_info(venue_fills)")}
        if "fee_base" not in fill_columns:  # spot buys' base-coin fee (a file from before spot markets)
            conn.execute("ALTER TABLE venue_fills ADD COLUMN fee_base TEXT NOT NULL DEFAULT '0'")
        conn.execute(f"PRAGMA application_id = {VENUE_APPLICATION_ID}")  # "this is a paper venues' file"
        conn.execute(
            "INSERT OR IGNORE INTO venue_meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
        )

    @classmethod
    def open(cls, path: str | Path, *, exclusive: bool = False) -> VenueStore:
        """Open (creating if needed) the venue file at ``path``: WAL, synchronous=NORMAL.

        ``exclusive`` holds the file's instance lock (``<path>.lock``) until ``close``: a second
        process opening it exclusively gets ``AlreadyRunning`` naming the holder's pid.
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        lock = InstanceLock.acquire(p) if exclusive else None
        try:
            check_venue_file(p)
            conn = sqlite3.connect(p, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")  # bounded, as the bot's own
                store = cls(conn, p)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store._instance_lock = lock
        return store

    @classmethod
    def in_memory(cls) -> VenueStore:
        """A throw-away store (nothing survives ``close``)."""
        return cls(sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None), None)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        if self._instance_lock is not None:
            self._instance_lock.release()

    def __enter__(self) -> VenueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def write(self, batch: VenueWrite) -> None:
        """Apply ``batch`` atomically: all of it is durable when this returns, or none of it is."""
        if batch.is_empty:
            return
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                self._write_rows(cur, batch)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _write_rows(self, cur: sqlite3.Cursor, batch: VenueWrite) -> None:
        if batch.orders:
            cur.executemany(
                """INSERT INTO venue_orders (venue, client_order_id, venue_order_id, seq, symbol, side,
                       order_type, time_in_force, limit_price, requested_base, filled_base, status,
                       reduce_only, reason, created_ts_ms, updated_ts_ms, post_only)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (venue, client_order_id) DO UPDATE SET
                       requested_base = excluded.requested_base, filled_base = excluded.filled_base,
                       status = excluded.status, reason = excluded.reason,
                       updated_ts_ms = excluded.updated_ts_ms""",
                [
                    (
                        o.venue, o.client_order_id, o.venue_order_id, o.seq, o.symbol, o.side.value,
                        o.order_type.value, o.time_in_force.value, _txt(o.limit_price), str(o.requested_base),
                        str(o.filled_base), o.status.value, int(o.reduce_only), o.reason, o.created_ts_ms,
                        o.updated_ts_ms, int(o.post_only),
                    )
                    for o in batch.orders
                ],
            )
        if batch.fills:
            # Plain INSERT: a reused trade id is a bug and must abort the whole transaction.
            cur.executemany(
                """INSERT INTO venue_fills (venue, trade_id, client_order_id, symbol, side, price,
                       size_base, fee_usd, liquidity, ts_ms, fee_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        f.venue, f.trade_id, f.client_order_id, f.symbol, f.side.value, str(f.price),
                        str(f.size_base), str(f.fee_usd), f.liquidity.value, f.ts_ms, str(f.fee_base),
                    )
                    for f in batch.fills
                ],
            )
        if batch.positions:
            cur.executemany(
                """INSERT OR REPLACE INTO venue_positions (venue, symbol, size_base, entry_price,
                       realized_pnl_usd, updated_ts_ms) VALUES (?, ?, ?, ?, ?, ?)""",
                [
                    (p.venue, p.symbol, str(p.size_base), str(p.entry_price), str(p.realized_pnl_usd),
                     p.updated_ts_ms)
                    for p in batch.positions
                ],
            )
        if batch.balances:
            cur.executemany(
                """INSERT OR REPLACE INTO venue_balances (venue, balance_usd, starting_usd,
                       realized_pnl_usd, fees_usd, funding_usd) VALUES (?, ?, ?, ?, ?, ?)""",
                [
                    (b.venue, str(b.balance_usd), str(b.starting_usd), str(b.realized_pnl_usd),
                     str(b.fees_usd), str(b.funding_usd))
                    for b in batch.balances
                ],
            )
        if batch.funding:
            cur.executemany(
                """INSERT INTO venue_funding (payment_id, venue, symbol, ts_ms, rate, position_size_base,
                       mark_price, amount_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (fp.payment_id, fp.venue, fp.symbol, fp.ts_ms, str(fp.rate), str(fp.position_size_base),
                     str(fp.mark_price), str(fp.amount_usd))
                    for fp in batch.funding
                ],
            )
        if batch.counters:
            cur.executemany("INSERT OR REPLACE INTO venue_meta (key, value) VALUES (?, ?)", list(batch.counters))

    # -- reading ---------------------------------------------------------------------------------

    def load(self) -> VenueState:
        """Everything in the store (used once on start-up to rebuild the executor's state)."""
        with self._lock:
            return _load(self._conn)

    # Lookups of history the executor no longer keeps in memory (older than its window).
    def order(self, venue: str, client_order_id: str) -> tuple[StoredOrder, list[Fill]] | None:
        """One order and its fills, in execution order; None when unknown."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_ORDER_COLUMNS} FROM venue_orders WHERE venue = ? AND client_order_id = ?",
                                     (venue, client_order_id)).fetchone()
            if row is None:
                return None
            fills = self._conn.execute(f"SELECT {_FILL_COLUMNS} FROM venue_fills WHERE venue = ? AND client_order_id = ? "
                                       "ORDER BY rowid", (venue, client_order_id)).fetchall()
        return _order_row(row), [_fill_row(f) for f in fills]

    def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_FILL_COLUMNS} FROM venue_fills WHERE venue = ? AND ts_ms >= ? "
                                      "ORDER BY rowid", (venue, since_ts_ms)).fetchall()
        return [_fill_row(r) for r in rows]

    def funding_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_FUNDING_COLUMNS} FROM venue_funding WHERE venue = ? AND ts_ms >= ? "
                                      "ORDER BY ts_ms, rowid", (venue, since_ts_ms)).fetchall()
        return [_funding_row(r) for r in rows]

    def funding_payment(self, payment_id: str) -> FundingPayment | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_FUNDING_COLUMNS} FROM venue_funding WHERE payment_id = ?",
                                     (payment_id,)).fetchone()
        return None if row is None else _funding_row(row)


_ORDER_COLUMNS = """venue, client_order_id, venue_order_id, seq, symbol, side, order_type, time_in_force,
                  limit_price, requested_base, filled_base, status, reduce_only, reason, created_ts_ms,
                  updated_ts_ms, post_only"""
_FILL_COLUMNS = (
    "venue, symbol, client_order_id, trade_id, side, price, size_base, fee_usd, liquidity, ts_ms, fee_base"
)
_FUNDING_COLUMNS = "payment_id, venue, symbol, ts_ms, rate, position_size_base, mark_price, amount_usd"


def _order_row(r: tuple) -> StoredOrder:
    return StoredOrder(
        venue=r[0], client_order_id=r[1], venue_order_id=r[2], seq=r[3], symbol=r[4],
        side=OrderSide(r[5]), order_type=OrderType(r[6]), time_in_force=TimeInForce(r[7]),
        limit_price=_dec(r[8]), requested_base=Decimal(r[9]), filled_base=Decimal(r[10]),
        status=OrderStatus(r[11]), reduce_only=bool(r[12]), reason=r[13], created_ts_ms=r[14],
        updated_ts_ms=r[15], post_only=bool(r[16]),
    )


def _fill_row(r: tuple) -> Fill:
    return Fill(
        venue=r[0], symbol=r[1], client_order_id=r[2], trade_id=r[3], side=OrderSide(r[4]),
        price=Decimal(r[5]), size_base=Decimal(r[6]), fee_usd=Decimal(r[7]),
        liquidity=Liquidity(r[8]), ts_ms=r[9], fee_base=Decimal(r[10]),
    )


def _funding_row(r: tuple) -> FundingPayment:
    return FundingPayment(
        payment_id=r[0], venue=r[1], symbol=r[2], ts_ms=r[3], rate=Decimal(r[4]),
        position_size_base=Decimal(r[5]), mark_price=Decimal(r[6]), amount_usd=Decimal(r[7]),
    )


def _load(conn: sqlite3.Connection) -> VenueState:
    state = VenueState()
    for r in conn.execute(f"SELECT {_ORDER_COLUMNS} FROM venue_orders ORDER BY venue, seq"):
        state.orders.append(_order_row(r))
    for r in conn.execute(f"SELECT {_FILL_COLUMNS} FROM venue_fills ORDER BY rowid"):
        state.fills.append(_fill_row(r))
    for r in conn.execute(
        "SELECT venue, symbol, size_base, entry_price, realized_pnl_usd, updated_ts_ms FROM venue_positions"
    ):
        state.positions.append(
            PositionState(
                venue=r[0], symbol=r[1], size_base=Decimal(r[2]), entry_price=Decimal(r[3]),
                realized_pnl_usd=Decimal(r[4]), updated_ts_ms=r[5],
            )
        )
    for r in conn.execute(
        "SELECT venue, balance_usd, starting_usd, realized_pnl_usd, fees_usd, funding_usd FROM venue_balances"
    ):
        state.balances.append(
            BalanceState(
                venue=r[0], balance_usd=Decimal(r[1]), starting_usd=Decimal(r[2]),
                realized_pnl_usd=Decimal(r[3]), fees_usd=Decimal(r[4]), funding_usd=Decimal(r[5]),
            )
        )
    for r in conn.execute(f"SELECT {_FUNDING_COLUMNS} FROM venue_funding ORDER BY ts_ms, rowid"):
        state.funding.append(_funding_row(r))
    state.counters = {k: v for k, v in conn.execute("SELECT key, value FROM venue_meta")}
    return state


def read_open_positions(path: str | Path) -> list[VenuePosition]:
    """Non-zero paper-venue positions in the file at ``path``, opened read-only (for ``report``).

    Returns an empty list when the file does not exist (no paper venue ever traded).
    """
    p = Path(path)
    if not p.exists():
        return []
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT venue, symbol, size_base, entry_price FROM venue_positions ORDER BY venue, symbol"
        ).fetchall()
    finally:
        conn.close()
    out = []
    for venue, symbol, size, entry in rows:
        size_base = Decimal(size)
        if size_base != 0:
            out.append(VenuePosition(venue=venue, symbol=symbol, size_base=size_base, entry_price=Decimal(entry)))
    return out
