"""Is this file one of ours? Read-only checks before any command touches a database.

Every file the bot opens is first inspected through a read-only connection (``mode=ro``), so a
foreign SQLite file, a corrupt file or a file that is not a database is refused before a single
byte of it changes. Our files carry a marker: ``PRAGMA application_id`` (set when they are
created) and their own schema tables; a file with neither is refused. Every SQLite error becomes
``BadDatabase``, one line naming the file.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError

BOT_APPLICATION_ID = 0x46524231  # "FRB1": the bot's database
VENUE_APPLICATION_ID = 0x46525631  # "FRV1": the paper venues' file

BOT_TABLES = frozenset({"schema_version", "positions", "orders", "fills", "events", "kv", "bot_state"})
VENUE_TABLES = frozenset({"venue_orders", "venue_fills", "venue_positions", "venue_balances", "venue_meta"})


class BadDatabase(StorageError):
    """A file that is not (a healthy copy of) this bot's database. The message is one line."""


@dataclass(frozen=True, slots=True)
class DbInfo:
    path: Path
    application_id: int
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.tables


def read_only_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


def inspect(path: str | Path) -> DbInfo:
    """Read the marker and table names through a read-only connection (the file must exist)."""
    p = Path(path)
    if p.is_dir():  # sqlite would say only "disk I/O error"
        raise BadDatabase(f"{p} is a directory, not a database file: give a file path (e.g. {p / 'state.sqlite'})")
    try:
        conn = sqlite3.connect(read_only_uri(p), uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise BadDatabase(f"cannot open database {p}: {exc}") from None
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = frozenset(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    except sqlite3.Error as exc:
        raise BadDatabase(f"{p} is not a usable SQLite database ({exc}); pass the bot's own database to --db") from None
    finally:
        conn.close()
    return DbInfo(p, app_id, tables)


def _is_ours(info: DbInfo, app_id: int, tables: frozenset[str]) -> bool:
    if info.empty and info.application_id in (0, app_id):
        return True  # a brand-new file: it becomes ours
    if info.application_id == app_id:
        return True
    # Files created before the marker existed: our complete set of tables, no foreign marker.
    return info.application_id == 0 and tables <= info.tables


def check_bot_database(path: str | Path) -> DbInfo | None:
    """Refuse an existing file that is not this bot's database. None when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return None
    if p.is_dir():
        raise BadDatabase(f"{p} is a directory, not a database file (pass a file path to --db)")
    info = inspect(p)
    if not _is_ours(info, BOT_APPLICATION_ID, BOT_TABLES):
        what = "the paper venues' file" if info.application_id == VENUE_APPLICATION_ID or VENUE_TABLES <= info.tables \
            else "not this bot's database"
        raise BadDatabase(f"{p} is {what} (no funding-bot schema marker); refusing to touch it "
                          "(pass the bot's own database to --db, or a new file name)")
    return info


def check_venue_file(path: str | Path) -> None:
    """Refuse an existing file that is not a paper venues' file (e.g. the bot's own database)."""
    p = Path(path)
    if not p.exists():
        return
    info = inspect(p)
    if not _is_ours(info, VENUE_APPLICATION_ID, VENUE_TABLES):
        raise BadDatabase(f"{p} is not a paper venues' file (no venue schema marker); refusing to touch it "
                          "(the bot's --db must not be another bot's .venues.sqlite file)")


def integrity_check(path: str | Path) -> None:
    """``PRAGMA quick_check`` through a read-only connection; raise ``BadDatabase`` on damage."""
    p = Path(path)
    if not p.exists():
        return
    try:
        conn = sqlite3.connect(read_only_uri(p), uri=True, timeout=5)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BadDatabase(f"integrity check of {p} failed: {exc}") from None
    if rows != ["ok"]:
        raise BadDatabase(f"{p} is damaged (integrity check: {'; '.join(rows)}); restore it from a backup "
                          "or move it aside")
