"""kill -9 at random moments, restart on the same files: nothing lost, nothing opened twice, flat at the end.

Runs the real bot (``python -m bot --paper``) as a subprocess through bench/torture.py: five
SIGKILLs after seeded random 0.2-3.0 s wall delays (the first three count from the process start,
so some land during start-up recovery; the last two count from the start-up event, so on a loaded
machine they still land mid-entry or mid-exit), then one graceful ``--duration 5`` run whose start-up reconciliation
repairs whatever the kills left and whose shutdown flattens. The two SQLite files are then
audited (tests/engine_harness.py::audit_files).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.torture import summarize, torture  # noqa: E402
from engine_harness import audit_files  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_random_kills_then_graceful_restart_lose_nothing_and_end_flat(tmp_path):
    result, db = torture(tmp_path, kills=5, seed=20260101, after_startup_from=3)
    summary = summarize(result, db)
    print(f"\ncrash torture: {summary}")

    assert [r.kind for r in result.rounds] == ["kill"] * 5 + ["graceful"]
    assert all(r.exit_code == -9 for r in result.rounds[:-1]), summary["exit_codes"]
    # Exit 0 of the graceful run means the bot verified flat on every venue itself.
    assert summary["graceful_exit_code"] == 0, (tmp_path / "run005.out").read_text()[-3000:]
    assert result.rounds[-1].startup_message is not None  # its start-up recovery ran and was recorded
    # The kills after start-up left open positions behind, so recovery really restored and resumed
    # positions rather than starting from nothing.
    assert summary["restored_positions"] >= 1

    audit = audit_files(db)
    assert audit.problems == {}
    assert audit.venue_positions == {}  # flat on every venue, read from the venues' own file
    assert set(audit.states) <= {"closed"} and sum(audit.states.values()) >= 1  # something traded
    assert summary["orphan_legs"] == 0
    assert summary["lost_positions"] == 0
    assert summary["duplicate_orders"] == 0


def test_random_kills_in_maker_taker_mode_leave_no_naked_leg(tmp_path):
    """The same torture with ``strategy.execution = "maker_taker"`` (makers rest up to 30 sim minutes,
    0.5 wall s): kills land while maker orders rest, between a maker fill and its hedge, mid-cancel.
    The graceful run's start-up restores them (``resting`` included), hedges or unwinds every maker
    fill and its shutdown flattens: flat, audited, nothing lost or duplicated."""
    # Kill delays count from each lifetime's start-up event: a slow start on a loaded machine still
    # leaves 0.3-2.5 wall s (0.3-2.5 sim hours) of trading, so kills land mid-entry, mid-rest, mid-exit.
    result, db = torture(tmp_path, kills=5, seed=11, execution="maker_taker", min_delay_s=0.3, max_delay_s=2.5,
                         after_startup=True)
    summary = summarize(result, db)
    print(f"\nmaker-taker crash torture: {summary}")
    assert summary["graceful_exit_code"] == 0, (tmp_path / "run005.out").read_text()[-3000:]
    assert summary["maker_orders"] >= 1 and summary["maker_fills"] >= 1
    assert summary["restored_positions"] >= 1
    audit = audit_files(db)
    assert audit.problems == {}
    assert audit.venue_positions == {}
    assert set(audit.states) <= {"closed"}
    assert summary["orphan_legs"] == 0 and summary["lost_positions"] == 0 and summary["duplicate_orders"] == 0


def test_random_kills_during_carry_restart_from_wallets_and_end_flat(tmp_path):
    """The same torture trading spot-perp carry only (spot markets on sim-8h and sim-mixed): kills land
    between a spot buy and its perp hedge, mid-exit, during start-up. Each restart rebuilds the spot legs
    from the stored fills (net of base-coin fees) and the wallet minus its recorded baseline; the graceful
    run's shutdown flattens: no perp left, every spot wallet back at its baseline, files audited."""
    result, db = torture(tmp_path, kills=5, seed=7, min_delay_s=0.3, max_delay_s=2.5, after_startup=True, carry=True)
    summary = summarize(result, db)
    print(f"\ncarry crash torture: {summary}")
    assert summary["graceful_exit_code"] == 0, (tmp_path / "run005.out").read_text()[-3000:]
    audit = audit_files(db)  # spot-aware: wallet minus baseline, fills net of base-coin fees, dust released
    assert audit.problems == {}
    assert audit.venue_positions == {}
    assert set(audit.states) <= {"closed"} and sum(audit.states.values()) >= 1
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        kinds = {r[0] for r in conn.execute("SELECT long_venue FROM positions")}
    assert kinds and all(v.endswith(":spot") for v in kinds)  # carry really traded
    assert summary["orphan_legs"] == 0 and summary["lost_positions"] == 0 and summary["duplicate_orders"] == 0
