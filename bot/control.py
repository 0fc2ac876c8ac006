"""``python -m bot halt | resume | flatten``: operator commands to a running bot.

The command is written into the bot's database (the ``kv`` table); the running bot polls it
every 0.25 s wall time and records what it did as events. A halt also survives a restart.
"""

from __future__ import annotations

import argparse
import sqlite3

from bot.app import CONTROL_FLATTEN_KEY, CONTROL_HALT_KEY
from bot.core.clock import iso_utc, utc_now_ms
from bot.report import open_existing, resolve_db
from bot.errors import UserInputError
from bot.settings import Settings
from storage import EventRecord, Severity
from storage.instance_lock import running_pid


def run_control(args: argparse.Namespace, settings: Settings) -> int:
    db = resolve_db(args, settings)
    storage = open_existing(db, write=True)
    now = utc_now_ms()
    try:
        if args.command == "halt":
            storage.set_kv(CONTROL_HALT_KEY, f"manual: {args.reason}", now)
            message = f"halt requested: {args.reason} (no new entries; only cancels and emergency closes)"
        elif args.command == "resume":
            storage.set_kv(CONTROL_HALT_KEY, "", now)
            message = "resume requested: the manual halt is cleared"
        else:
            storage.set_kv(CONTROL_FLATTEN_KEY, iso_utc(now), now)
            message = "flatten requested: every position will be closed (reason manual_flatten)"
        storage.record_event(EventRecord(now, f"control_{args.command}", Severity.WARNING, message))
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
