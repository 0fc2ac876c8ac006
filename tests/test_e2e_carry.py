"""End to end: ``python -m bot --paper`` trading spot-perp carry on the simulated market.

Carry only (``strategy.pair_kinds = ["spot_perp"]``) on two venues that run a spot market beside their
perps. The run trades, collects funding on the perp legs only, and at ``--duration`` flattens and exits
0; then ``report`` and ``postmortem`` are read back: both legs of each carry position are shown, the
money adds up to the cent against an independent sum over the recorded fills, funding and the spot
dust released at the close, and the spot wallets are back at their baselines.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from decimal import Decimal

import pytest

from paper.venue_store import venue_store_path_for
from tests.helpers_cli import query, report_json, run_bot, start_bot, stop_if_running, wait_for, write_settings

pytestmark = pytest.mark.e2e

CARRY = {
    "sim": {"spot_venues": '["sim-8h", "sim-mixed"]'},
    "strategy": {"pair_kinds": '["spot_perp"]', "min_expected_net_usd": '"-100"'},
    "risk": {"max_breakeven_hours": '"100000"'},
    "exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'},
}


@pytest.fixture(scope="module")
def carry_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("carry")
    settings = write_settings(cwd, CARRY)
    db = cwd / "paper.sqlite"
    proc = run_bot("--paper", "--speed", "3600", "--duration", "15", "--db", db, "--settings", settings,
                   cwd=cwd, timeout_s=240)
    return cwd, settings, db, proc


def test_paper_carry_run_trades_and_ends_flat(carry_run):
    cwd, settings, db, proc = carry_run
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "flat on every venue" in proc.stdout + proc.stderr
    report = report_json(db, settings, cwd)
    carry = [p for p in report["positions"] if p["filled"]]
    assert carry, "no carry position was opened"
    for p in carry:
        assert p["pair_kind"] == "spot_perp" and p["long_venue"].endswith(":spot") and p["state"] == "closed"
        assert not p["short_venue"].endswith(":spot")
    assert report["open_exposure"] == {}


def test_funding_is_paid_on_the_perp_leg_only(carry_run):
    _cwd, _settings, db, _proc = carry_run
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT f.venue, f.leg, p.short_venue FROM funding_payments f "
                            "JOIN positions p ON p.id = f.position_id").fetchall()
    assert rows, "15 simulated hours of carry must see funding settlements"
    for venue, leg, short_venue in rows:
        assert leg == "short" and venue == short_venue and not venue.endswith(":spot")


def test_report_and_postmortem_show_both_legs_and_add_up_to_the_cent(carry_run):
    cwd, settings, db, _proc = carry_run
    report = report_json(db, settings, cwd)
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        kv = dict(conn.execute("SELECT key, value FROM kv"))
        for p in (p for p in report["positions"] if p["filled"]):
            proc = run_bot("postmortem", p["id"], "--db", db, "--settings", settings, "--json", cwd=cwd)
            assert proc.returncode == 0, proc.stderr
            doc = json.loads(proc.stdout)
            fills = [e["data"] for e in doc["timeline"] if e["kind"] == "fill"]
            assert {f["venue"] for f in fills} == {p["long_venue"], p["short_venue"]}  # both legs shown
            spot_buys = [f for f in fills if f["venue"] == p["long_venue"] and f["side"] == "buy"]
            assert spot_buys and all(Decimal(f["fee_base"]) > 0 for f in spot_buys)  # fee taken in the coin
            assert any("taken as" in e["summary"] for e in doc["timeline"] if e["kind"] == "fill")
            # Independent cash sum: sells in, buys out, USD fees out (a coin fee is already missing from
            # the coins), funding in, plus the sub-lot spot coins left in the wallet at the last spot price.
            cash = Decimal(0)
            for f in fills:
                notional = Decimal(f["price"]) * Decimal(f["size_base"])
                cash += notional if f["side"] == "sell" else -notional
                if Decimal(f["fee_base"]) == 0:
                    cash -= Decimal(f["fee_usd"])
            cash += sum((Decimal(e["data"]["amount_usd"]) for e in doc["timeline"] if e["kind"] == "funding"),
                        Decimal(0))
            dust = Decimal(kv.get(f"spot_dust:{p['id']}:{p['long_venue']}", "0"))
            last_spot = [f for f in fills if f["venue"] == p["long_venue"]][-1]
            cash += dust * Decimal(last_spot["price"])
            assert dust < Decimal("0.01")  # dust is below one spot lot of any simulated symbol
            realized = Decimal(doc["realized_pnl_usd"])
            assert round(realized, 2) == round(cash, 2), (p["id"], realized, cash)
            assert Decimal(p["realized_pnl_usd"]) == realized
            assert realized == (Decimal(p["price_pnl_usd"]) + Decimal(p["funding_usd"]) - Decimal(p["fees_usd"]))


def test_spot_wallets_are_back_at_their_baselines(carry_run):
    _cwd, _settings, db, _proc = carry_run
    venues = venue_store_path_for(db)
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        baselines = dict(conn.execute("SELECT key, value FROM kv WHERE key LIKE 'spot_baseline:%'"))
    assert baselines
    with sqlite3.connect(f"{venues.resolve().as_uri()}?mode=ro", uri=True) as conn:
        wallets = {f"spot_baseline:{v}:{s}": Decimal(size) for v, s, size in
                   conn.execute("SELECT venue, symbol, size_base FROM venue_positions WHERE venue LIKE '%:spot'")}
        perps = [r for r in conn.execute("SELECT venue, symbol, size_base FROM venue_positions "
                                         "WHERE venue NOT LIKE '%:spot'") if Decimal(r[2]) != 0]
    assert not perps
    for key, baseline in baselines.items():
        assert wallets.get(key, Decimal(0)) == Decimal(baseline), key


def test_sigterm_flattens_open_carry_and_exits_0(tmp_path):
    """SIGTERM while a carry position is hedged: both legs are closed, the wallet is back at its baseline
    (verified by the bot itself) and the process exits 0."""
    settings = write_settings(tmp_path, CARRY)
    db = tmp_path / "paper.sqlite"
    proc = start_bot("--paper", "--speed", "3600", "--db", db, "--settings", settings, cwd=tmp_path)
    try:
        assert wait_for(lambda: bool(query(db, "SELECT id FROM positions WHERE state = 'monitoring' "
                                               "AND long_venue LIKE '%:spot'")), timeout_s=60, proc=proc)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        stop_if_running(proc)
    stderr = (tmp_path / "run.stderr").read_text()
    assert rc == 0, stderr[-3000:]
    assert "stopped: signal SIGTERM; all positions closed, flat on every venue" in stderr
    rows = query(db, "SELECT state, exit_reason, long_venue FROM positions WHERE long_venue LIKE '%:spot'")
    assert rows and all(r["state"] == "closed" for r in rows)
    report = report_json(db, settings, tmp_path)
    assert report["open_exposure"] == {}
