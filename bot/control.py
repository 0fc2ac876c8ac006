"""``python -m bot halt | resume | flatten``: operator commands to a running bot.

The command is written into the bot's database (the ``kv`` table); the running bot polls it
every 0.25 s wall time and records what it did as events. A halt also survives a restart.
The web API (``bot.web``) writes its requests through ``write_control`` too, so both are
recorded the same way.
"""

from __future__ import annotations

import argparse
import sqlite3

from bot.app import CONTROL_FLATTEN_KEY, CONTROL_HALT_KEY
from bot.core.clock import iso_utc, utc_now_ms
from bot.errors import UserInputError
from bot.report import open_existing, resolve_db
from bot.settings import Settings
from storage import EventRecord, Severity, Storage
from storage.instance_lock import running_pid

CONTROL_COMMANDS = ("halt", "resume", "flatten")


def write_control(storage: Storage, command: str, reason: str, now_ms: int, source: str = "cli") -> str:
    """Record one halt/resume/flatten request (kv flag + ``control_<command>`` event); returns
    the message. ``source`` ("cli" or "web") is kept in the event's details.

    The request is stamped no earlier than the latest recorded instant: a sped-up paper run records
    simulated times ahead of the wall clock, and a request must read as coming after them."""
    now_ms = max(now_ms, _latest_recorded_ts_ms(storage))
    if command == "halt":
        storage.set_kv(CONTROL_HALT_KEY, f"manual: {reason}", now_ms)
        message = f"halt requested: {reason} (no new entries; only cancels and emergency closes)"
    elif command == "resume":
        storage.set_kv(CONTROL_HALT_KEY, "", now_ms)
        message = "resume requested: the manual halt is cleared"
    elif command == "flatten":
        storage.set_kv(CONTROL_FLATTEN_KEY, iso_utc(now_ms), now_ms)
        message = "flatten requested: every position will be closed (reason manual_flatten)"
    else:
        raise ValueError(f"unknown control command {command!r} (expected one of {', '.join(CONTROL_COMMANDS)})")
    details = {"source": source, "reason": reason}
    storage.record_event(EventRecord(now_ms, f"control_{command}", Severity.WARNING, message, None, details))
    return message


def _latest_recorded_ts_ms(storage: Storage) -> int:
    latest = 0
    for table in ("events", "transitions"):
        row = storage.db.execute(f"SELECT MAX(ts_ms) FROM {table}").fetchone()
        if row and row[0] is not None:
            latest = max(latest, int(row[0]))
    return latest


def run_control(args: argparse.Namespace, settings: Settings) -> int:
    db = resolve_db(args, settings)
    storage = open_existing(db, write=True)
    try:
        message = write_control(storage, args.command, getattr(args, "reason", None) or f"manual {args.command}", utc_now_ms())
    except sqlite3.Error as exc:
        raise UserInputError(f"cannot write the request to {db}: {exc}") from None
    finally:
        storage.close()
    pid = running_pid(db)
    if pid is None:
        when = ("no bot is running on it: the request waits and is applied when the bot next starts "
                "on this database")
    else:
        when = f"the running bot ({f'pid {pid}' if pid else 'pid unknown'}) applies it within a second"
    print(f"{message}; written to {db}; {when}")
    return 0
