"""Operator controls on a RUNNING bot: `python -m bot flatten` closes everything and halts;
`resume` lets it trade again; `halt` stops entries. The bot is a real subprocess."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers_cli import query, report_json, run_bot, start_bot, stop_if_running, wait_for, write_settings

pytestmark = pytest.mark.e2e

EASY = {
    "strategy": {"min_expected_net_usd": '"-1000"'},
    "risk": {"max_breakeven_hours": '"1000000"'},
    "exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'},  # min <= max is enforced
}


def open_count(db: Path) -> int:
    return query(db, "SELECT COUNT(*) FROM positions WHERE state = 'monitoring'")[0][0]


def test_flatten_closes_every_position_halts_and_resume_trades_again(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, EASY)
    db = tmp_path / "paper.sqlite"
    proc = start_bot("--paper", "--speed", "600", "--db", db, "--settings", settings, cwd=tmp_path)
    try:
        assert wait_for(lambda: open_count(db) >= 1, 45, proc=proc), "no position opened"
        flatten = run_bot("flatten", "--db", db, "--settings", settings, cwd=tmp_path)
        assert flatten.returncode == 0, flatten.stderr

        def all_closed_by_flatten() -> bool:
            rows = query(db, "SELECT state, exit_reason FROM positions")
            return bool(rows) and all(r["state"] == "closed" for r in rows)

        assert wait_for(all_closed_by_flatten, 30, proc=proc), "flatten did not close every position"
        reasons = {r["exit_reason"] for r in query(db, "SELECT exit_reason FROM positions")}
        assert "manual_flatten" in reasons
        closed_at_flatten = query(db, "SELECT COUNT(*) FROM positions")[0][0]
        assert query(db, "SELECT state FROM bot_state")[0]["state"] == "halted"
        # Halted: no new entries while time passes (600x: 2 s wall = 20 simulated minutes).
        assert not wait_for(lambda: query(db, "SELECT COUNT(*) FROM positions")[0][0] > closed_at_flatten, 2,
                            proc=proc)

        resume = run_bot("resume", "--db", db, "--settings", settings, cwd=tmp_path)
        assert resume.returncode == 0, resume.stderr
        assert wait_for(lambda: open_count(db) >= 1, 45, proc=proc), "entries did not resume"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop_if_running(proc)
    report = report_json(db, settings, tmp_path)
    assert report["open_exposure"] == {}
    kinds = [h["kind"] for h in report["halts"]]
    assert "manual_flatten" in kinds and "resume" in kinds


FAULTY = {
    **EASY,
    "exit": {"min_hold_hours": '"2"'},
    "paper.faults": {
        "reject_probability": "0.1",
        "timeout_probability": "0.1",
        "partial_fill_probability": "0.2",
        "latency_spike_probability": "0.05",
        "stale_quote_probability": "0.05",
        "absurd_quote_probability": "0.05",
        "venue_outage_probability": "0.002",
    },
}


@pytest.mark.parametrize("seed", ["1", "2"])
def test_paper_run_under_heavy_injected_faults_ends_flat_with_books_that_add_up(tmp_path: Path, seed: str) -> None:
    settings = write_settings(tmp_path, FAULTY)
    db = tmp_path / "paper.sqlite"
    done = run_bot("--paper", "--speed", "3600", "--duration", "15", "--seed", seed, "--db", db,
                   "--settings", settings, cwd=tmp_path, timeout_s=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = report_json(db, settings, tmp_path)
    assert report["open_exposure"] == {}
    assert report["positions"], "faults must not prevent trading altogether"
    assert all(p["state"] == "closed" for p in report["positions"])
    for p in report["positions"]:
        assert p["realized_pnl_usd"] is not None, f"{p['id']}: fills do not net to zero"
    client_ids = [r[0] for r in query(db, "SELECT client_order_id FROM orders")]
    assert len(client_ids) == len(set(client_ids))
    rejected = query(db, "SELECT COUNT(*) FROM orders WHERE status = 'rejected'")[0][0]
    assert rejected > 0, "the injected rejects really happened"
