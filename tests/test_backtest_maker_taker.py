"""The backtest in maker-taker mode: real funding history, synthetic books around replayed prices.

Prices only move at data events, so a maker order fills only when a later event's book trades through
its price; each such fill is hedged at once and the run ends flat with every position closed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_harness import audit_files
from shared_data import shared_data_dir
from tests.helpers_cli import query, run_bot, write_settings

pytestmark = pytest.mark.slow


def test_backtest_week_in_maker_taker_mode_hedges_every_maker_fill(tmp_path: Path) -> None:
    data = shared_data_dir() / "funding"
    settings = write_settings(tmp_path, {"strategy": {"execution": '"maker_taker"'}})
    db = tmp_path / "bt.sqlite"
    proc = run_bot("backtest", "--data", data, "--from", "2025-09-01T00:00:00Z", "--to", "2025-09-08T00:00:00Z",
                   "--settings", settings, "--db", db, "--json", cwd=tmp_path, timeout_s=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["open_positions_at_end"] == 0
    makers = query(db, "SELECT status FROM orders WHERE post_only = 1")
    assert makers and {m["status"] for m in makers} <= {"filled", "canceled", "rejected"}
    maker_fills = query(db, "SELECT position_id, size_base FROM fills WHERE liquidity = 'maker'")
    assert maker_fills, "no maker order was traded through in a week of data"
    for fill in maker_fills:  # hedged on the other venue by a taker order of the same position
        hedges = query(db, "SELECT COUNT(*) AS n FROM orders WHERE position_id = ? AND purpose = 'repair' "
                           "AND status = 'filled'", (fill["position_id"],))
        assert hedges[0]["n"] >= 1
    assert {r["state"] for r in query(db, "SELECT state FROM positions")} == {"closed"}
    audit = audit_files(db)
    assert audit.problems == {} and audit.venue_positions == {}
