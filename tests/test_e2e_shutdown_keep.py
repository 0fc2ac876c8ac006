"""End to end: ``shutdown.on_signal = "keep"`` leaves hedged positions open; a restart resumes them.

First run (keep, ``--duration``, which stops exactly as SIGTERM): exits 0 saying what it kept; the
database still has those positions in ``monitoring`` and the paper venues hold exactly their legs
(long = +size, short = -size, nothing else). Second run (the default, flatten): the start-up
restores the same positions through the reconciliation path (no orphans, no new fills for them
before the shutdown), then SIGTERM flattens everything with reason ``shutdown``.
"""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest

from paper.venue_store import read_open_positions, venue_store_path_for
from tests.helpers_cli import query, start_bot, stop_if_running, wait_for, write_settings

pytestmark = pytest.mark.e2e

SETTINGS = {
    "strategy": {"min_expected_net_usd": '"-100"'},
    "risk": {"max_breakeven_hours": '"100000"'},
    "exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'},
}


def _open_positions(db: Path) -> list[tuple[str, str, str, str, str, str]]:
    return [tuple(r) for r in query(db, "SELECT id, symbol, long_venue, short_venue, long_size_base, short_size_base "
                                        "FROM positions WHERE state != 'closed' ORDER BY id")]


def test_keep_leaves_hedged_positions_and_a_restart_resumes_them(tmp_path: Path) -> None:
    keep = write_settings(tmp_path, {**SETTINGS, "shutdown": {"on_signal": '"keep"'}}, name="keep.toml")
    flatten = write_settings(tmp_path, SETTINGS, name="flatten.toml")
    db = tmp_path / "paper.sqlite"

    first = start_bot("--paper", "--speed", "3600", "--duration", "8", "--db", db, "--settings", keep,
                      cwd=tmp_path, log_name="first")
    try:
        assert first.wait(timeout=60) == 0, (tmp_path / "first.stderr").read_text()
    finally:
        stop_if_running(first)
    stderr = (tmp_path / "first.stderr").read_text()
    kept = _open_positions(db)
    assert len(kept) >= 1, stderr
    assert f"kept {len(kept)} hedged position(s) open" in stderr
    assert "Traceback" not in stderr
    states = {r[0] for r in query(db, "SELECT state FROM positions WHERE state != 'closed'")}
    assert states == {"monitoring"}
    assert query(db, "SELECT reason FROM transitions WHERE machine = 'bot' AND dest = 'stopped'")[-1][0].startswith(
        "kept ")
    # The venues hold exactly the kept legs, nothing else.
    expected: dict[tuple[str, str], Decimal] = {}
    for _id, symbol, long_venue, short_venue, long_size, short_size in kept:
        assert Decimal(long_size) == Decimal(short_size) > 0
        expected[(long_venue, symbol)] = expected.get((long_venue, symbol), Decimal(0)) + Decimal(long_size)
        expected[(short_venue, symbol)] = expected.get((short_venue, symbol), Decimal(0)) - Decimal(short_size)
    venues = {(p.venue, p.symbol): p.size_base for p in read_open_positions(venue_store_path_for(db))}
    assert venues == {k: v for k, v in expected.items() if v != 0}

    second = start_bot("--paper", "--speed", "3600", "--db", db, "--settings", flatten, cwd=tmp_path,
                       log_name="second")
    try:
        assert wait_for(lambda: query(db, "SELECT COUNT(*) FROM events WHERE kind = 'startup'")[0][0] == 2, 30,
                        proc=second)
        startup = query(db, "SELECT message FROM events WHERE kind = 'startup' ORDER BY id")[-1][0]
        assert f"{len(kept)} position(s) restored" in startup, startup
        assert query(db, "SELECT COUNT(*) FROM events WHERE kind LIKE 'orphan%'")[0][0] == 0
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, (tmp_path / "second.stderr").read_text()
    finally:
        stop_if_running(second)
    assert "all positions closed, flat on every venue" in (tmp_path / "second.stderr").read_text()
    kept_ids = [r[0] for r in kept]
    rows = query(db, f"SELECT state, exit_reason, closed_at_ts_ms FROM positions WHERE id IN "
                     f"({','.join('?' * len(kept_ids))})", tuple(kept_ids))
    assert {r[0] for r in rows} == {"closed"}
    # What the signal closed, it closed as "shutdown" (an emergency exit, e.g. a funding flip, may
    # have closed a resumed position on its own between the restart and the signal).
    signal_ts = query(db, "SELECT ts_ms FROM events WHERE kind = 'signal' ORDER BY id")[-1][0]
    by_signal = [r[1] for r in rows if r[2] >= signal_ts]
    assert by_signal and set(by_signal) == {"shutdown"}, [tuple(r) for r in rows]
    assert read_open_positions(venue_store_path_for(db)) == []
