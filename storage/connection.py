"""Opening the bot's SQLite file: pragmas, the sqlite-utils wrapper, the schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from storage.db_check import BadDatabase, check_bot_database, read_only_uri
from storage.errors import StorageError
from storage.schema import LATEST_VERSION, current_version, migrate

BUSY_TIMEOUT_MS = 5000
# SQLite's page cache per connection (KiB). Its default (2 MiB) fills as the file grows over weeks,
# which a months-long run sees as RSS growth; the bot's reads are small indexed look-ups (the hot
# B-tree pages fit in far less) and the OS caches the file anyway (bench/scale_year.py).
PAGE_CACHE_KIB = 512


def open_database(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    The connection is made with ``check_same_thread=False`` so the async shell's single writer
    thread (``AsyncStorage``) may use it; callers must never use it from two threads at once.
    WAL + ``synchronous=NORMAL`` keep every committed transaction across a process kill;
    foreign keys are enforced.
    """
    path = Path(path)
    check_bot_database(path)  # a foreign or broken file is refused before a byte of it changes
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    try:
        db = Database(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"could not enable WAL on {path} (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise StorageError("this SQLite build cannot enforce foreign keys")
        migrate(db)
    except BaseException:
        conn.close()
        raise
    return db


def open_database_readonly(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open an existing bot database for reading only (``mode=ro``): nothing in the file changes.

    Raises ``BadDatabase`` (one line naming the file) for a missing, foreign, broken or
    not-yet-migrated file.
    """
    path = Path(path)
    if check_bot_database(path) is None:
        raise BadDatabase(f"no database at {path}")
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False,
                               timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as exc:
        raise BadDatabase(f"cannot open database {path}: {exc}") from None
    try:
        db = Database(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = current_version(db)
        if version != LATEST_VERSION:
            raise BadDatabase(f"{path} has schema version {version}, this code reads {LATEST_VERSION} "
                              "(start the bot on it once to upgrade it, or use a matching version)")
    except sqlite3.Error as exc:
        conn.close()
        raise BadDatabase(f"{path} cannot be read: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return db
