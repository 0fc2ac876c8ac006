"""The bot's database is lost while the (paper) venues still hold its positions.

Run 1 trades and is SIGKILLed with positions open; its database is deleted; the venues' file stays.
Run 2 (orphan_policy "alert") must say so loudly at start-up, make no entry on the orphaned
symbols, never resize anything to absorb them, leave them untouched, and report NOT FLAT at the
end (they are still open). Run 3 (orphan_policy "flatten") closes them and exits flat.
"""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import query, run_bot, start_bot, wait_for, write_settings

pytestmark = pytest.mark.e2e

EASY_ENTRIES = {"strategy": {"min_expected_net_usd": '"-100"'}, "risk": {"max_breakeven_hours": '"100000"'}}
NO_EXITS = {"exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'}}


def _venue_sizes(venue_db: Path) -> dict[tuple[str, str], Decimal]:
    rows = query(venue_db, "SELECT venue, symbol, size_base FROM venue_positions")
    return {(r["venue"], r["symbol"]): Decimal(r["size_base"]) for r in rows if Decimal(r["size_base"]) != 0}


def _settings(tmp_path: Path, policy: str, name: str) -> Path:
    return write_settings(tmp_path, {**EASY_ENTRIES, **NO_EXITS, "reconcile": {"orphan_policy": f'"{policy}"'}},
                          name=name)


def test_lost_database_no_entry_on_orphans_no_resize_and_flat_with_the_flatten_policy(tmp_path: Path) -> None:
    db = tmp_path / "paper.sqlite"
    venue_db = tmp_path / "paper.venues.sqlite"
    alert = _settings(tmp_path, "alert", "alert.toml")
    first = start_bot("--paper", "--speed", "3600", "--db", db, "--settings", alert, cwd=tmp_path)
    try:
        opened = wait_for(lambda: len(query(db, "SELECT id FROM positions WHERE state = 'monitoring'")) >= 2,
                          60, proc=first)
        assert opened, (tmp_path / "run.stderr").read_text()[-2000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    held = _venue_sizes(venue_db)
    orphan_symbols = {symbol for _venue, symbol in held}
    assert held and len(orphan_symbols) >= 2
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)

    second = run_bot("--paper", "--speed", "3600", "--duration", "4", "--db", db, "--settings", alert,
                     cwd=tmp_path, timeout_s=90)
    assert "WARNING: database" in second.stderr and "is missing" in second.stderr, second.stderr
    assert all(symbol in second.stderr for symbol in orphan_symbols)
    # Orphans alone (alert policy) stay open: the shutdown says NOT FLAT and exits 3, honestly.
    assert second.returncode == 3, second.stderr
    assert "NOT FLAT" in second.stderr
    # No entry on an orphaned symbol; positions on other symbols are fine.
    entered = {r["symbol"] for r in query(db, "SELECT symbol FROM positions")}
    assert not entered & orphan_symbols, (entered, orphan_symbols)
    # Nothing adopted the foreign size, and the orphans themselves were not traded.
    assert not query(db, "SELECT id FROM events WHERE kind = 'leg_adjusted'")
    assert {k: v for k, v in _venue_sizes(venue_db).items() if k[1] in orphan_symbols} == held
    orphan_events = query(db, "SELECT message FROM events WHERE kind = 'orphan_position'")
    assert {sym for sym in orphan_symbols if any(sym in r["message"] for r in orphan_events)} == orphan_symbols

    flatten = _settings(tmp_path, "flatten", "flatten.toml")
    third = run_bot("--paper", "--speed", "3600", "--duration", "4", "--db", db, "--settings", flatten,
                    cwd=tmp_path, timeout_s=90)
    assert third.returncode == 0, third.stderr
    assert "flat on every venue" in third.stderr
    assert _venue_sizes(venue_db) == {}
