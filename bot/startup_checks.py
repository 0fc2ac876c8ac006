"""Before a trading run touches its database: one bot per file, our file, a healthy file.

``claim_database`` takes the database's instance lock (held for the whole run, released by the
kernel on any death), refuses a foreign, damaged or unreadable file, and reports loudly when the
bot's database is missing or empty while the paper venues still hold positions (a lost database:
those positions become orphans, and no entry is made on their symbols until they are resolved).
Every refusal is a ``UserInputError``: one line naming the file, exit code 2.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import TextIO

from bot.errors import UserInputError
from paper.venue_store import read_open_positions, venue_store_path_for
from storage.db_check import (
    BadDatabase,
    check_bot_database,
    check_venue_file,
    integrity_check,
)
from storage.instance_lock import AlreadyRunning, InstanceLock


def claim_database(db_path: Path, *, venue_file: bool = True, out: TextIO = sys.stderr) -> InstanceLock:
    """Lock ``db_path`` for this process and check it (and its venue file); the caller holds the lock."""
    try:
        check_bot_database(db_path)  # first, read-only: a foreign file gets not even a lock file beside it
    except BadDatabase as exc:
        raise UserInputError(str(exc)) from None
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        lock = InstanceLock.acquire(db_path)
    except AlreadyRunning as exc:
        raise UserInputError(str(exc)) from None
    except OSError as exc:
        raise UserInputError(f"cannot use database {db_path}: {exc.strerror or exc} "
                             "(pass a writable path to --db)") from None
    try:
        check_bot_database(db_path)
        integrity_check(db_path)
        venue_path = venue_store_path_for(db_path)
        if venue_file:
            check_venue_file(venue_path)
            integrity_check(venue_path)
            warning = lost_database_warning(db_path, venue_path)
            if warning:
                print(warning, file=out)
        pending = pending_requests_line(db_path)
        if pending:
            print(pending, file=out)
    except BadDatabase as exc:
        lock.release()
        raise UserInputError(str(exc)) from None
    except BaseException:
        lock.release()
        raise
    return lock


def lost_database_warning(db_path: Path, venue_path: Path) -> str | None:
    """A loud start-up line when the bot's database knows no position but the venues hold some."""
    held = [p for p in read_open_positions(venue_path) if p.size_base != 0]
    if not held or _known_positions(db_path) > 0:
        return None
    what = "is missing" if not db_path.exists() else "holds no position"
    symbols = sorted({p.symbol for p in held})
    listing = ", ".join(f"{p.venue}:{p.symbol}={p.size_base}" for p in held)
    return (f"WARNING: database {db_path} {what}, but the paper venues ({venue_path}) hold positions: {listing}. "
            f"They are orphans: no entry on {', '.join(symbols)} until they are resolved "
            f"(reconcile.orphan_policy decides: 'alert' leaves them open, 'flatten' closes them).")


def pending_requests_line(db_path: Path) -> str | None:
    """Control requests written while no bot ran (``python -m bot halt|flatten``): said at start-up."""
    if not db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='kv'").fetchone():
                return None
            rows = dict(conn.execute("SELECT key, value FROM kv WHERE key IN ('control.halt', 'control.flatten')"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BadDatabase(f"cannot read {db_path}: {exc}") from None
    waiting = []
    if rows.get("control.flatten"):
        waiting.append(f"flatten (requested {rows['control.flatten']}): every position will be closed, then halted")
    if rows.get("control.halt"):
        waiting.append(f"halt ({rows['control.halt']}): no new entries until `python -m bot resume`")
    return ("pending control request(s) applied now: " + "; ".join(waiting)) if waiting else None


def _known_positions(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='positions'").fetchone():
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BadDatabase(f"cannot read {db_path}: {exc}") from None
