"""The SQLite schema as an ordered list of migrations, applied idempotently at open.

Conventions (documented for users in storage/SCHEMA.md):
- Decimals are TEXT holding ``str(Decimal)`` exactly; never REAL, never summed in SQL.
- Timestamps are INTEGER ms since the epoch, UTC (``*_ts_ms``), with an ISO-8601 UTC ``*_iso``
  companion where a human reads the table.
- Enums are TEXT with CHECK constraints; booleans are INTEGER 0/1.
- ``seq`` is a global recording order shared by transitions, orders, fills, funding payments and
  events (one counter, bumped by triggers) so a timeline can break equal-timestamp ties truthfully.

Pending migrations run inside one transaction together with their ``schema_version`` rows, so
a crash mid-migration leaves the previous version intact. Never edit a released migration;
append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from storage.db_check import BOT_APPLICATION_ID
from storage.errors import StorageError

_SEQ_TABLES = ("transitions", "orders", "fills", "funding_payments", "events")


def _seq_trigger(table: str) -> str:
    return f"""
        CREATE TRIGGER {table}_assign_seq AFTER INSERT ON {table}
        BEGIN
            UPDATE journal_seq SET value = value + 1 WHERE id = 1;
            UPDATE {table} SET seq = (SELECT value FROM journal_seq WHERE id = 1)
            WHERE rowid = NEW.rowid;
        END
    """


_V1 = [
    """
    CREATE TABLE positions (
        id TEXT PRIMARY KEY,
        symbol TEXT NOT NULL,
        long_venue TEXT NOT NULL,
        short_venue TEXT NOT NULL,
        state TEXT NOT NULL,
        target_size_base TEXT NOT NULL,
        long_size_base TEXT NOT NULL,
        short_size_base TEXT NOT NULL,
        notional_usd TEXT NOT NULL,
        entry_spread_hourly TEXT,
        entry_apr TEXT,
        entry_expected_net_usd TEXT,
        entry_costs_usd TEXT,
        entry_long_price TEXT,
        entry_short_price TEXT,
        entry_details TEXT,
        opened_at_ts_ms INTEGER,
        opened_at_iso TEXT,
        closed_at_ts_ms INTEGER,
        closed_at_iso TEXT,
        exit_reason TEXT,
        last_error TEXT,
        unhedged_ms_entry INTEGER,
        unhedged_ms_exit INTEGER,
        created_at_ts_ms INTEGER NOT NULL,
        updated_at_ts_ms INTEGER NOT NULL,
        CHECK (long_venue <> short_venue)
    )
    """,
    "CREATE INDEX positions_state ON positions (state)",
    """
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        position_id TEXT REFERENCES positions (id),
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        purpose TEXT NOT NULL
            CHECK (purpose IN ('open', 'close', 'repair', 'unwind', 'flatten')),
        leg TEXT CHECK (leg IN ('long', 'short')),
        attempt INTEGER NOT NULL CHECK (attempt >= 0),
        size_base TEXT NOT NULL,
        order_type TEXT NOT NULL CHECK (order_type IN ('market', 'limit')),
        time_in_force TEXT NOT NULL CHECK (time_in_force IN ('ioc', 'gtc')),
        limit_price TEXT,
        reduce_only INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
        status TEXT NOT NULL CHECK (status IN
            ('pending', 'new', 'partially_filled', 'filled', 'canceled', 'rejected')),
        filled_base TEXT NOT NULL,
        avg_price TEXT,
        venue_order_id TEXT,
        reason TEXT,
        created_at_ts_ms INTEGER NOT NULL,
        created_at_iso TEXT NOT NULL,
        updated_at_ts_ms INTEGER NOT NULL,
        seq INTEGER
    )
    """,
    "CREATE INDEX orders_position ON orders (position_id)",
    "CREATE INDEX orders_status ON orders (status)",
    """
    CREATE TABLE fills (
        venue TEXT NOT NULL,
        trade_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
        position_id TEXT REFERENCES positions (id),
        side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        price TEXT NOT NULL,
        size_base TEXT NOT NULL,
        fee_usd TEXT NOT NULL,
        liquidity TEXT NOT NULL CHECK (liquidity IN ('maker', 'taker')),
        ts_ms INTEGER NOT NULL,
        ts_iso TEXT NOT NULL,
        seq INTEGER,
        PRIMARY KEY (venue, trade_id)
    )
    """,
    "CREATE INDEX fills_position ON fills (position_id, ts_ms)",
    "CREATE INDEX fills_order ON fills (client_order_id)",
    """
    CREATE TABLE funding_payments (
        venue TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        position_id TEXT REFERENCES positions (id),
        leg TEXT CHECK (leg IN ('long', 'short')),
        symbol TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        ts_iso TEXT NOT NULL,
        rate TEXT NOT NULL,
        position_size_base TEXT NOT NULL,
        mark_price TEXT NOT NULL,
        amount_usd TEXT NOT NULL,
        seq INTEGER,
        PRIMARY KEY (venue, payment_id)
    )
    """,
    "CREATE INDEX funding_position ON funding_payments (position_id, ts_ms)",
    """
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        ts_iso TEXT NOT NULL,
        machine TEXT NOT NULL CHECK (machine IN ('bot', 'position')),
        entity_id TEXT NOT NULL,
        source TEXT NOT NULL,
        dest TEXT NOT NULL,
        trigger TEXT NOT NULL,
        reason TEXT,
        details TEXT,
        seq INTEGER
    )
    """,
    "CREATE INDEX transitions_entity ON transitions (machine, entity_id, ts_ms)",
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        ts_iso TEXT NOT NULL,
        kind TEXT NOT NULL,
        entity_id TEXT,
        severity TEXT NOT NULL
            CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
        message TEXT NOT NULL,
        details TEXT,
        seq INTEGER
    )
    """,
    "CREATE INDEX events_kind ON events (kind, ts_ms)",
    "CREATE INDEX events_entity ON events (entity_id, ts_ms)",
    """
    CREATE TABLE bot_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL,
        updated_at_ts_ms INTEGER NOT NULL,
        updated_at_iso TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at_ts_ms INTEGER NOT NULL
    )
    """,
    "CREATE TABLE journal_seq (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
    "INSERT INTO journal_seq (id, value) VALUES (1, 0)",
    *(_seq_trigger(table) for table in _SEQ_TABLES),
]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V2 = [
    # Maker-taker entries rest a post-only order; a restart must know it is one.
    "ALTER TABLE orders ADD COLUMN post_only INTEGER NOT NULL DEFAULT 0 CHECK (post_only IN (0, 1))",
]

_V3 = [
    # Spot buys pay their fee in the base coin: the leg holds size_base - fee_base (carry legs).
    "ALTER TABLE fills ADD COLUMN fee_base TEXT NOT NULL DEFAULT '0'",
]

_V4 = [
    # A taker-taker entry's intent as ONE row (its already-encoded transitions, position and order
    # rows), committed before its orders leave; the normalised rows are written, and this row
    # deleted, in one transaction once the orders are on their way. A row still here at open (a
    # kill between the two) is materialised then (``Storage.replay_entry_journal``). No index: it
    # holds at most the entries in flight.
    "CREATE TABLE entry_journal (id INTEGER PRIMARY KEY, position_id TEXT NOT NULL, payload TEXT NOT NULL)",
]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", tuple(_V1)),
    Migration(2, "orders.post_only", tuple(_V2)),
    Migration(3, "fills.fee_base", tuple(_V3)),
    Migration(4, "entry_journal", tuple(_V4)),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(db: Database) -> int:
    """The highest applied migration, 0 for an empty database."""
    if "schema_version" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(db: Database) -> int:
    """Bring ``db`` to ``LATEST_VERSION``; a no-op on an up-to-date database. Returns the version.

    Runs under ``BEGIN IMMEDIATE`` so two processes opening the same file cannot both migrate.
    """
    if db.conn.in_transaction:
        raise StorageError("migrate() must not run inside an open transaction")
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        db.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, description TEXT NOT NULL)"
        )
        version = current_version(db)
        if version > LATEST_VERSION:
            raise StorageError(
                f"database schema version {version} is newer than this code "
                f"({LATEST_VERSION}); refusing to touch it"
            )
        db.conn.execute(f"PRAGMA application_id = {BOT_APPLICATION_ID}")  # "this is the bot's database"
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            for statement in migration.statements:
                db.conn.execute(statement)
            db.conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                (migration.version, migration.description),
            )
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return current_version(db)
