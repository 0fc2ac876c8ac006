"""End to end: ``python -m bot --paper`` as a real user runs it, then ``report``/``postmortem``.

The long runs (a 40 s run, and a 20 s + 10 s restart pair) start in the background when the module
starts, so the SIGTERM tests run while they trade; the whole file takes about 45 s of wall time.
At ``--speed 3600`` one wall second is one simulated hour.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest

from tests.helpers_cli import (
    query,
    report_json,
    run_bot,
    start_bot,
    stop_if_running,
    wait_for,
    write_settings,
)

pytestmark = pytest.mark.e2e

SPEED = "3600"
DEADLINE_S = 30  # shutdown.deadline_seconds in the shipped settings
EASY_ENTRIES = {"strategy": {"min_expected_net_usd": '"-100"'}, "risk": {"max_breakeven_hours": '"100000"'}}
NO_EARLY_EXITS = {"exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'}}
D0 = Decimal(0)


# ----------------------------------------------------------------------------- background runs
@dataclass
class FinishedRun:
    cwd: Path
    db: Path
    settings: Path
    returncode: int
    stdout: str
    stderr: str


@dataclass
class RestartRuns:
    first: FinishedRun | None = None
    second: FinishedRun | None = None
    after_first: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _snapshot(db: Path) -> dict[str, Any]:
    """Everything the first run left, to compare after the second."""
    return {
        "positions": [tuple(r) for r in query(db, "SELECT * FROM positions ORDER BY id")],
        "orders": [tuple(r) for r in query(db, "SELECT * FROM orders ORDER BY client_order_id")],
        "fills": [tuple(r) for r in query(db, "SELECT * FROM fills ORDER BY venue, trade_id")],
        "funding": [tuple(r) for r in query(db, "SELECT * FROM funding_payments ORDER BY venue, payment_id")],
    }


def _finish(proc: subprocess.Popen[str], cwd: Path, db: Path, settings: Path, log_name: str,
            timeout_s: float) -> FinishedRun:
    try:
        rc = proc.wait(timeout=timeout_s)
    finally:
        stop_if_running(proc)
    return FinishedRun(cwd, db, settings, rc, (cwd / f"{log_name}.stdout").read_text(),
                       (cwd / f"{log_name}.stderr").read_text())


def _restart_pair(cwd: Path, out: RestartRuns) -> None:
    try:
        settings = write_settings(cwd)
        db = cwd / "paper.sqlite"
        for name, duration in (("first", "20"), ("second", "10")):
            proc = start_bot("--paper", "--speed", SPEED, "--duration", duration, "--db", db, "--settings", settings,
                             cwd=cwd, log_name=name)
            run = _finish(proc, cwd, db, settings, name, timeout_s=float(duration) + DEADLINE_S + 15)
            setattr(out, name, run)
            if name == "first":
                if run.returncode != 0:
                    return
                out.after_first = _snapshot(db)
    except BaseException as exc:  # handed to the test thread, which re-raises it
        out.error = exc
    finally:
        out.done.set()


@pytest.fixture(scope="module", autouse=True)
def background_runs(tmp_path_factory: pytest.TempPathFactory):
    """Start the 40 s run and the restart pair now; tests collect them when they need them."""
    long_dir = tmp_path_factory.mktemp("run40")
    long_settings = write_settings(long_dir)
    long_db = long_dir / "paper.sqlite"
    long_proc = start_bot("--paper", "--speed", SPEED, "--duration", "40", "--db", long_db,
                          "--settings", long_settings, cwd=long_dir, log_name="run")
    restart = RestartRuns()
    thread = threading.Thread(target=_restart_pair, args=(tmp_path_factory.mktemp("restart"), restart), daemon=True)
    thread.start()
    handles = {"long": (long_proc, long_dir, long_db, long_settings), "restart": restart}
    try:
        yield handles
    finally:
        stop_if_running(long_proc)
        thread.join(timeout=80)


@pytest.fixture(scope="module")
def long_run(background_runs) -> FinishedRun:
    proc, cwd, db, settings = background_runs["long"]
    return _finish(proc, cwd, db, settings, "run", timeout_s=40 + DEADLINE_S + 15)


@pytest.fixture(scope="module")
def restart_runs(background_runs) -> RestartRuns:
    restart: RestartRuns = background_runs["restart"]
    assert restart.done.wait(timeout=30 + 2 * DEADLINE_S + 40), "restart runs did not finish"
    if restart.error is not None:
        raise restart.error
    return restart


# ----------------------------------------------------------------------------- shared checks
def _dec(text: str | None) -> Decimal:
    assert text is not None
    return Decimal(text)


def assert_report_flat_and_consistent(report: dict[str, Any]) -> None:
    """All positions closed, no exposure anywhere, realized = price + funding - fees exactly."""
    assert report["bot_state"] == "stopped"
    assert report["open_exposure"] == {}
    assert report["totals"]["open_positions"] == 0
    total = D0
    for p in report["positions"]:
        assert p["state"] == "closed", p
        assert p["closed_at"] is not None, p
        realized = _dec(p["realized_pnl_usd"])
        assert realized == _dec(p["price_pnl_usd"]) + _dec(p["funding_usd"]) - _dec(p["fees_usd"]), p
        total += realized
    assert _dec(report["totals"]["realized_pnl_usd"]) == total


def assert_money_matches_sqlite(report: dict[str, Any], db: Path) -> None:
    """Recompute price PnL, fees and funding of every position from the raw rows."""
    by_id = {p["id"]: p for p in report["positions"]}
    with localcontext() as ctx:
        ctx.prec = 80
        for position_id, row in by_id.items():
            sold = bought = fees = D0
            net_base: dict[str, Decimal] = {}
            for f in query(db, "SELECT venue, side, price, size_base, fee_usd FROM fills WHERE position_id = ?",
                           (position_id,)):
                notional = Decimal(f["price"]) * Decimal(f["size_base"])
                signed = Decimal(f["size_base"]) if f["side"] == "buy" else -Decimal(f["size_base"])
                net_base[f["venue"]] = net_base.get(f["venue"], D0) + signed
                if f["side"] == "buy":
                    bought += notional
                else:
                    sold += notional
                fees += Decimal(f["fee_usd"])
            funding = sum((Decimal(r["amount_usd"]) for r in query(
                db, "SELECT amount_usd FROM funding_payments WHERE position_id = ?", (position_id,))), D0)
            assert all(v == 0 for v in net_base.values()), (position_id, net_base)
            assert _dec(row["price_pnl_usd"]) == sold - bought, position_id
            assert _dec(row["fees_usd"]) == fees, position_id
            assert _dec(row["funding_usd"]) == funding, position_id


def close_start_ts(db: Path, position_id: str) -> int:
    """Simulated time the position's close began (its first transition to closing, else closed)."""
    rows = query(db, "SELECT ts_ms, dest FROM transitions WHERE machine = 'position' AND entity_id = ? "
                     "ORDER BY ts_ms, id", (position_id,))
    for dest in ("closing", "closed"):
        for r in rows:
            if r["dest"] == dest:
                return r["ts_ms"]
    raise AssertionError(f"position {position_id} never started closing: {[tuple(r) for r in rows]}")


def events(db: Path, kind: str) -> list[Any]:
    return query(db, "SELECT ts_ms, message FROM events WHERE kind = ? ORDER BY id", (kind,))


def monitoring_ids(db: Path) -> list[str]:
    return [r["id"] for r in query(db, "SELECT id FROM positions WHERE state = 'monitoring'")]


@dataclass
class LiveRun:
    proc: subprocess.Popen[str]
    cwd: Path
    db: Path
    settings: Path
    open_ids: list[str]


def start_with_open_position(base: Path, overrides: dict[str, dict[str, str]]) -> LiveRun:
    """Start an open-ended paper run and wait until a position is hedged (monitoring).

    With the shipped entry thresholds a position opens within a few wall seconds; if none does in
    20 s, the run is stopped and retried with entries made easy.
    """
    for attempt, extra in enumerate(({}, EASY_ENTRIES)):
        cwd = base / f"attempt{attempt}"
        cwd.mkdir()
        settings = write_settings(cwd, {**overrides, **extra})
        db = cwd / "paper.sqlite"
        proc = start_bot("--paper", "--speed", SPEED, "--db", db, "--settings", settings, cwd=cwd)
        if wait_for(lambda: bool(monitoring_ids(db)), timeout_s=20 if attempt == 0 else 45, proc=proc):
            if proc.poll() is None:
                return LiveRun(proc, cwd, db, settings, monitoring_ids(db))
        stop_if_running(proc)
        assert proc.returncode == 0, (cwd / "run.stderr").read_text()
    raise AssertionError("no position opened, even with easy entry settings")


# ----------------------------------------------------------------------------- b. SIGTERM
def test_sigterm_flattens_and_exits_0(tmp_path: Path) -> None:
    run = start_with_open_position(tmp_path, {})
    try:
        run.proc.send_signal(signal.SIGTERM)
        rc = run.proc.wait(timeout=DEADLINE_S + 10)
    finally:
        stop_if_running(run.proc)
    stderr = (run.cwd / "run.stderr").read_text()
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped: signal SIGTERM; all positions closed, flat on every venue" in stderr

    signals = events(run.db, "signal")
    assert len(signals) == 1 and "SIGTERM" in signals[0]["message"]
    signal_ts = signals[0]["ts_ms"]
    positions = query(run.db, "SELECT id, state, exit_reason FROM positions")
    assert positions
    for p in positions:
        assert p["state"] == "closed", tuple(p)
        open_at_signal = close_start_ts(run.db, p["id"]) >= signal_ts
        assert (p["exit_reason"] == "shutdown") == open_at_signal, (tuple(p), signal_ts)
    reasons = {p["id"]: p["exit_reason"] for p in positions}
    for position_id in run.open_ids:  # hedged when the signal was sent; min hold is 4 sim hours
        assert reasons[position_id] == "shutdown"

    bot = query(run.db, "SELECT trigger, dest, reason FROM transitions WHERE machine = 'bot' ORDER BY id")
    assert (bot[-1]["trigger"], bot[-1]["dest"]) == ("shutdown_complete", "stopped")
    assert bot[-1]["reason"].startswith("flat"), bot[-1]["reason"]

    report = report_json(run.db, run.settings, run.cwd)
    assert_report_flat_and_consistent(report)
    assert {p["id"] for p in report["positions"]} == set(reasons)


# ----------------------------------------------------------------------------- c. second SIGTERM
def test_second_sigterm_during_flatten_is_ignored(tmp_path: Path) -> None:
    # 60 s (simulated) per venue request makes the flatten take a few hundred wall ms, so the
    # second signal lands in the middle of it; positions only close on the signal.
    run = start_with_open_position(tmp_path, {"paper": {"latency_ms": "60000"}, **NO_EARLY_EXITS})
    stderr_path = run.cwd / "run.stderr"
    try:
        run.proc.send_signal(signal.SIGTERM)
        handled = wait_for(lambda: bool(events(run.db, "signal")), timeout_s=10, interval_s=0.002, proc=run.proc)
        assert handled, stderr_path.read_text()
        flatten_over = "stopped:" in stderr_path.read_text()
        second_sent = handled and run.proc.poll() is None and not flatten_over
        if second_sent:
            run.proc.send_signal(signal.SIGTERM)
        rc = run.proc.wait(timeout=DEADLINE_S + 10)
    finally:
        stop_if_running(run.proc)
    stderr = stderr_path.read_text()
    assert rc == 0, (rc, stderr)
    assert "stopped: signal SIGTERM; all positions closed, flat on every venue" in stderr
    assert len(events(run.db, "signal")) == 1
    ignored = events(run.db, "signal_ignored")
    if second_sent:
        assert len(ignored) == 1 and "SIGTERM" in ignored[0]["message"]
    for p in query(run.db, "SELECT id, state, exit_reason FROM positions"):
        assert p["state"] == "closed", tuple(p)
        assert p["exit_reason"] == "shutdown", tuple(p)  # no other exit can fire (min hold 1000 h)
    assert_report_flat_and_consistent(report_json(run.db, run.settings, run.cwd))


# ----------------------------------------------------------------------------- a. a 40 s run
def test_duration_run_ends_flat_with_exact_pnl(long_run: FinishedRun) -> None:
    assert long_run.returncode == 0, long_run.stderr
    assert "Traceback" not in long_run.stderr
    assert "stopped: duration elapsed; all positions closed, flat on every venue" in long_run.stderr
    assert long_run.stdout.count("bot=") >= 10  # one status line per wall second (not a tty)
    assert (long_run.cwd / "bot.log.jsonl").stat().st_size > 0  # logs went where settings said

    report = report_json(long_run.db, long_run.settings, long_run.cwd)
    assert len(report["positions"]) >= 1
    assert_report_flat_and_consistent(report)
    assert any(_dec(p["funding_usd"]) != 0 for p in report["positions"])
    assert_money_matches_sqlite(report, long_run.db)
    assert len(events(long_run.db, "duration_elapsed")) == 1

    # The paper venues agree: every fill and funding payment the venues made is in the bot's books.
    venue_db = long_run.db.with_name(long_run.db.stem + ".venues.sqlite")
    assert venue_db.exists()
    venue_fills = {(r["venue"], r["trade_id"]) for r in query(venue_db, "SELECT venue, trade_id FROM venue_fills")}
    bot_fills = {(r["venue"], r["trade_id"]) for r in query(long_run.db, "SELECT venue, trade_id FROM fills")}
    assert venue_fills == bot_fills
    assert all(Decimal(r["size_base"]) == 0 for r in query(venue_db, "SELECT size_base FROM venue_positions"))


def test_order_rows_agree_with_their_fills(long_run: FinishedRun) -> None:
    """An order's recorded status and fill size match its fills (a reconcile pass that looked up an
    in-flight order once marked it 'rejected: venue has no such order' next to a real fill)."""
    assert long_run.returncode == 0, long_run.stderr
    with localcontext() as ctx:
        ctx.prec = 80
        for order in query(long_run.db, "SELECT client_order_id, status, filled_base FROM orders"):
            fills = [Decimal(r["size_base"]) for r in query(
                long_run.db, "SELECT size_base FROM fills WHERE client_order_id = ?", (order["client_order_id"],))]
            assert Decimal(order["filled_base"] or 0) == sum(fills, D0), tuple(order)
            if order["status"] == "rejected":
                assert fills == [], tuple(order)


# ----------------------------------------------------------------------------- d. postmortem
def test_postmortem_shows_full_lifecycle(long_run: FinishedRun) -> None:
    assert long_run.returncode == 0, long_run.stderr
    positions = query(long_run.db, "SELECT id, exit_reason FROM positions WHERE state = 'closed' "
                                   "AND opened_at_ts_ms IS NOT NULL ORDER BY created_at_ts_ms")
    assert positions
    # The first hedged position, plus the first closed by the shutdown and by the strategy.
    chosen = [positions[0]["id"]]
    for wanted_shutdown in (True, False):
        match = next((p["id"] for p in positions if (p["exit_reason"] == "shutdown") == wanted_shutdown), None)
        if match is not None and match not in chosen:
            chosen.append(match)
    for position_id in chosen:
        proc = run_bot("postmortem", position_id, "--db", long_run.db, "--settings", long_run.settings, "--json",
                       cwd=long_run.cwd)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["position_id"] == position_id and doc["state"] == "closed"
        timeline = doc["timeline"]
        assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)

        chain = [(e["data"]["source"], e["data"]["dest"]) for e in timeline if e["kind"] == "transition"]
        assert chain, timeline
        assert chain[0] == ("scanning", "opening"), chain
        assert all(prev[1] == nxt[0] for prev, nxt in zip(chain, chain[1:])), chain
        assert chain[-1] == ("closing", "closed"), chain
        assert "monitoring" in [dest for _, dest in chain], chain

        orders = [e["data"] for e in timeline if e["kind"] == "order"]
        fills = [e["data"] for e in timeline if e["kind"] == "fill"]
        assert {o["purpose"] for o in orders} >= {"open", "close"}, orders
        assert {o["leg"] for o in orders} == {"long", "short"}
        db_fills = query(long_run.db, "SELECT trade_id FROM fills WHERE position_id = ?", (position_id,))
        assert sorted(f["trade_id"] for f in fills) == sorted(r["trade_id"] for r in db_fills)
        assert len(fills) >= 4  # at least open and close on both legs
        net: dict[str, Decimal] = {}
        with localcontext() as ctx:
            ctx.prec = 80
            price_pnl = D0
            for f in fills:
                size = Decimal(f["size_base"])
                net[f["venue"]] = net.get(f["venue"], D0) + (size if f["side"] == "buy" else -size)
                notional = Decimal(f["price"]) * size
                price_pnl += notional if f["side"] == "sell" else -notional
            funding = sum((Decimal(e["data"]["amount_usd"]) for e in timeline if e["kind"] == "funding"), D0)
            fees = sum((Decimal(f["fee_usd"]) for f in fills), D0)
            assert _dec(doc["realized_pnl_usd"]) == price_pnl + funding - fees
        assert set(net) == {doc["long_venue"], doc["short_venue"]} and all(v == 0 for v in net.values()), net


# ----------------------------------------------------------------------------- e. restart
def test_restart_on_same_db_keeps_history(restart_runs: RestartRuns) -> None:
    first, second = restart_runs.first, restart_runs.second
    assert first is not None and first.returncode == 0, first and first.stderr
    assert second is not None and second.returncode == 0, second.stderr
    assert "stopped: duration elapsed; all positions closed, flat on every venue" in second.stderr
    db = second.db

    startups = events(db, "startup")
    assert len(startups) == 2
    assert "0 position(s) restored" in startups[1]["message"]

    # Nothing the first run wrote was rewritten by the second.
    before = restart_runs.after_first
    assert before["positions"], "the first run opened no position"
    now = _snapshot(db)
    for table in ("positions", "orders", "fills", "funding"):
        assert set(before[table]) <= set(now[table]), table

    report = report_json(db, second.settings, second.cwd)
    assert_report_flat_and_consistent(report)
    assert_money_matches_sqlite(report, db)
    first_ids = {row[0] for row in before["positions"]}
    assert first_ids <= {p["id"] for p in report["positions"]}

    # Client order ids are unique across both runs, in the bot's books and at the venues.
    cids = [r["client_order_id"] for r in query(db, "SELECT client_order_id FROM orders")]
    assert len(cids) == len(set(cids))
    venue_db = db.with_name(db.stem + ".venues.sqlite")
    venue_cids = [r["client_order_id"] for r in query(venue_db, "SELECT client_order_id FROM venue_orders")]
    assert len(venue_cids) == len(set(venue_cids))
    venue_fills = {(r["venue"], r["trade_id"]) for r in query(venue_db, "SELECT venue, trade_id FROM venue_fills")}
    assert venue_fills == {(r["venue"], r["trade_id"]) for r in query(db, "SELECT venue, trade_id FROM fills")}

