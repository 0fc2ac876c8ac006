"""End to end: ``python -m bot --paper`` with ``strategy.execution = "maker_taker"``.

A 15 s run at ``--speed 3600`` (15 simulated hours) with easy entry thresholds: entries rest a
post-only maker order, the simulated market trades through some of them, each maker fill is hedged
by a taker IOC; the run ends flat (exit 0) and both SQLite files pass the money-safety audit.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from engine_harness import audit_files
from tests.helpers_cli import query, start_bot, stop_if_running, write_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAKER_TAKER = {
    "strategy": {"execution": '"maker_taker"', "min_expected_net_usd": '"-100"'},
    "risk": {"max_breakeven_hours": '"100000"'},
}


def test_paper_run_in_maker_taker_mode_hedges_every_maker_fill_and_ends_flat(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, MAKER_TAKER)
    db = tmp_path / "paper.sqlite"
    proc = start_bot("--paper", "--speed", "3600", "--duration", "15", "--db", db, "--settings", settings, cwd=tmp_path)
    try:
        rc = proc.wait(timeout=15 + 30 + 15)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        stop_if_running(proc)
    stderr = (tmp_path / "run.stderr").read_text()
    assert rc == 0, stderr[-3000:]
    assert "flat on every venue" in stderr and "Traceback" not in stderr

    makers = query(db, "SELECT client_order_id, position_id, venue, status, filled_base FROM orders WHERE post_only = 1")
    assert makers, "no maker order was placed"
    assert all(m["status"] in ("filled", "canceled", "rejected") for m in makers)  # none left working
    maker_fills = query(db, "SELECT position_id, venue, size_base, liquidity FROM fills "
                            "WHERE client_order_id IN (SELECT client_order_id FROM orders WHERE post_only = 1)")
    assert maker_fills and all(f["liquidity"] == "maker" for f in maker_fills)
    # Every position that got a maker fill was hedged on its other venue (taker) or unwound: the
    # entries' unhedged windows were measured and every position is closed, flat at both venues.
    hedged = {r["position_id"] for r in query(db, "SELECT DISTINCT position_id FROM orders WHERE purpose = 'repair' "
                                                  "AND status = 'filled'")}
    assert {f["position_id"] for f in maker_fills} <= hedged
    windows = query(db, "SELECT id, unhedged_ms_entry FROM positions WHERE id IN "
                        "(SELECT position_id FROM fills WHERE liquidity = 'maker')")
    assert all(w["unhedged_ms_entry"] is not None for w in windows)
    assert {r["state"] for r in query(db, "SELECT state FROM positions")} == {"closed"}

    audit = audit_files(db)
    assert audit.problems == {} and audit.venue_positions == {}
    # Maker fills paid the maker fee: cheaper than a taker fill of the same notional.
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT liquidity, fee_usd, price, size_base FROM fills").fetchall()
    rate = {liq: [Decimal(fee) / (Decimal(p) * Decimal(s)) for l2, fee, p, s in rows if l2 == liq]
            for liq in ("maker", "taker")}
    assert max(rate["maker"]) < min(rate["taker"]), json.dumps({k: [str(x) for x in v] for k, v in rate.items()})
