"""Opening the bot's SQLite file: pragmas, the sqlite-utils wrapper, the schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from storage.errors import StorageError
from storage.schema import migrate

BUSY_TIMEOUT_MS = 5000


def open_database(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    The connection is made with ``check_same_thread=False`` so the async shell's single writer
    thread (``AsyncStorage``) may use it; callers must never use it from two threads at once.
    WAL + ``synchronous=NORMAL`` keep every committed transaction across a process kill;
    foreign keys are enforced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    try:
        db = Database(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"could not enable WAL on {path} (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise StorageError("this SQLite build cannot enforce foreign keys")
        migrate(db)
    except BaseException:
        conn.close()
        raise
    return db
