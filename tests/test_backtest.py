"""``python -m bot backtest`` as a user runs it: numbers that add up, funding recomputed by hand
from the CSV rows, and one-line errors for bad data."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import assert_usage_error, query, report_json, run_bot, write_settings
from tests.shared_data import shared_data_dir

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
HEADER = "venue,symbol,quote,venue_symbol,settlement_ts,rate,interval_hours,mark_price\n"


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_synthetic(directory: Path, days: int = 10, *, gz: bool = True) -> Path:
    """ETH on binance (8h, marks drifting up) and hyperliquid (1h, no marks, paying a steady
    premium), so the bot has a spread worth trading and one leg priced at the reference."""
    directory.mkdir(parents=True, exist_ok=True)
    binance, hyper = [HEADER], [HEADER]
    for hour in range(days * 24 + 1):
        at = START + timedelta(hours=hour)
        hyper.append(f"hyperliquid,ETH,USDC,ETH,{_iso(at)},0.0001,1,\n")
        if hour % 8 == 0:
            mark = Decimal(3000) + Decimal(hour) / 4
            binance.append(f"binance,ETH,USDT,ETHUSDT,{_iso(at)},0.0001,8,{mark}\n")
    for name, lines in (("binance", binance), ("hyperliquid", hyper)):
        text = "".join(lines)
        if gz:
            with gzip.open(directory / f"{name}.csv.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("backtest")
    data = write_synthetic(work / "data")
    # The plumbing under test (accounting, references, report), not the strategy: pin a strategy
    # that opens and closes several positions in ten days.
    settings = write_settings(work, {"forecast": {"mode": '"persistent"'}, "exit": {"max_hold_hours": '"48"'}})
    db = work / "bt.sqlite"
    proc = run_bot("backtest", "--data", data, "--json", "--db", db, "--settings", settings,
                   "--plot", work / "plot.html", cwd=work, timeout_s=120)
    assert proc.returncode == 0, proc.stderr
    return {"summary": json.loads(proc.stdout), "db": db, "settings": settings, "work": work, "data": data}


def test_backtest_numbers_add_up_and_equal_report(synthetic_run: dict) -> None:
    s = synthetic_run["summary"]
    assert s["positions"] >= 2, s
    funding, price, fees, net = (Decimal(s[k]) for k in ("funding_usd", "price_pnl_usd", "fees_usd", "net_usd"))
    assert funding > 0 and fees > 0
    assert net == funding + price - fees
    report = report_json(synthetic_run["db"], synthetic_run["settings"], synthetic_run["work"])
    totals = report["totals"]
    assert Decimal(totals["realized_pnl_usd"]).quantize(Decimal("0.01")) == net.quantize(Decimal("0.01"))
    assert Decimal(totals["funding_usd"]) == funding and Decimal(totals["fees_usd"]) == fees
    assert totals["open_positions"] == 0 and report["open_exposure"] == {}
    assert set(s["references"]) == {"hold_best_pair", "naive"}
    best = s["references"]["hold_best_pair"]
    assert best["positions"] == 1 and best["pairs"] == ["ETH long binance / short hyperliquid"]
    assert Decimal(best["funding_usd"]) > funding  # held the whole period: collects every settlement
    assert s["venues"] == ["binance", "hyperliquid"]
    per_pair_net = sum(Decimal(p["net_usd"]) for p in s["per_pair"])
    assert per_pair_net == net


def test_backtest_plot_is_a_self_contained_page(synthetic_run: dict) -> None:
    page = (synthetic_run["work"] / "plot.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3 and "<polyline" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_funding_of_a_closed_position_recomputed_from_csv_rows(synthetic_run: dict) -> None:
    """Hyperliquid leg has no marks: it is valued at the reference price, which here is binance's
    latest own mark (at most 9 h old), exactly as the README documents."""
    db = synthetic_run["db"]
    pos = query(db, "SELECT * FROM positions WHERE state = 'closed' AND opened_at_ts_ms IS NOT NULL "
                    "ORDER BY opened_at_ts_ms LIMIT 1")[0]
    size = Decimal(query(db, "SELECT f.size_base FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
                             "WHERE o.position_id = ? AND o.leg = 'long' AND f.side = 'buy'", (pos["id"],))[0][0])
    opened, closed = pos["opened_at_ts_ms"], pos["closed_at_ts_ms"]
    rows = {}
    for path in sorted(synthetic_run["data"].glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            rows[path.name.split(".")[0]] = list(csv.DictReader(handle))
    marks = [(int(datetime.fromisoformat(r["settlement_ts"]).timestamp() * 1000), Decimal(r["mark_price"]))
             for r in rows["binance"]]

    def binance_mark_at(ts_ms: int) -> Decimal:
        return [m for t, m in marks if t <= ts_ms and ts_ms - t <= 9 * 3_600_000][-1]

    expected = Decimal(0)
    for venue, sign in ((pos["long_venue"], -1), (pos["short_venue"], 1)):
        for r in rows[venue]:
            ts_ms = int(datetime.fromisoformat(r["settlement_ts"]).timestamp() * 1000)
            if opened < ts_ms <= closed:  # held at the settlement instant
                expected += sign * Decimal(r["rate"]) * size * binance_mark_at(ts_ms)
    recorded = sum(Decimal(r[0]) for r in query(db, "SELECT amount_usd FROM funding_payments WHERE position_id = ?",
                                                 (pos["id"],)))
    assert recorded == expected
    assert expected != 0


def test_postmortem_works_on_a_backtest_database(synthetic_run: dict) -> None:
    db = synthetic_run["db"]
    pid = query(db, "SELECT id FROM positions WHERE state = 'closed' LIMIT 1")[0][0]
    proc = run_bot("postmortem", pid, "--db", db, "--settings", synthetic_run["settings"], cwd=synthetic_run["work"])
    assert proc.returncode == 0, proc.stderr
    assert "monitoring -> closing" in proc.stdout and "funding" in proc.stdout


def test_a_venue_without_fees_is_an_error_naming_it(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "data", days=2, gz=False)
    text = (data / "hyperliquid.csv").read_text().replace("hyperliquid,", "someperpdex,").replace(
        "venue,symbol", "venue,symbol", 1)
    (data / "hyperliquid.csv").write_text(text)
    proc = run_bot("backtest", "--data", data, "--settings", write_settings(tmp_path), cwd=tmp_path)
    assert_usage_error(proc, "someperpdex", "[venues.someperpdex]", "taker_fee_bps")


def test_malformed_row_names_file_line_and_column(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "data", days=2, gz=False)
    lines = (data / "binance.csv").read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",0.0001,", ",zero,")
    (data / "binance.csv").write_text("".join(lines))
    proc = run_bot("backtest", "--data", data, "--settings", write_settings(tmp_path), cwd=tmp_path)
    assert_usage_error(proc, "binance.csv:4:", "'rate'")


def test_truncated_gzip_is_one_line(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "data", days=5)
    blob = (data / "binance.csv.gz").read_bytes()
    (data / "binance.csv.gz").write_bytes(blob[: len(blob) // 2])
    proc = run_bot("backtest", "--data", data, "--settings", write_settings(tmp_path), cwd=tmp_path)
    assert_usage_error(proc, "binance.csv.gz", "truncated")


def test_backtest_refuses_to_replace_a_database_it_did_not_write(tmp_path: Path) -> None:
    data = write_synthetic(tmp_path / "data", days=2)
    foreign = tmp_path / "mine.sqlite"
    foreign.write_bytes(b"not a backtest")
    proc = run_bot("backtest", "--data", data, "--db", foreign, "--settings", write_settings(tmp_path), cwd=tmp_path)
    assert_usage_error(proc, "refusing")
    assert foreign.read_bytes() == b"not a backtest"


def test_shared_year_backtest_hand_checks_one_position(tmp_path: Path) -> None:
    """On real data (two weeks of the shared year): the run completes, numbers add up, and one closed
    position's funding equals the raw CSV rows times the documented prices."""
    funding_dir = shared_data_dir() / "funding"
    db = tmp_path / "bt.sqlite"
    settings = write_settings(tmp_path)
    proc = run_bot("backtest", "--data", funding_dir, "--from", "2026-02-01T00:00:00Z", "--to", "2026-02-15T00:00:00Z",
                   "--json", "--db", db, "--settings", settings, cwd=tmp_path, timeout_s=180)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert Decimal(s["net_usd"]) == Decimal(s["funding_usd"]) + Decimal(s["price_pnl_usd"]) - Decimal(s["fees_usd"])
    report = report_json(db, settings, tmp_path)
    assert Decimal(report["totals"]["realized_pnl_usd"]).quantize(Decimal("0.01")) == Decimal(s["net_usd"]).quantize(
        Decimal("0.01"))
    pos = query(db, "SELECT p.* FROM positions p WHERE state = 'closed' AND EXISTS "
                    "(SELECT 1 FROM funding_payments f WHERE f.position_id = p.id) ORDER BY opened_at_ts_ms LIMIT 1")
    if not pos:
        pytest.skip("no closed position with funding in this window")
    pos = pos[0]
    size = Decimal(query(db, "SELECT f.size_base FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
                             "WHERE o.position_id = ? AND o.leg = 'long' AND o.purpose = 'open'", (pos["id"],))[0][0])
    by_venue: dict[str, list[dict]] = {}
    for path in sorted(funding_dir.glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["symbol"] == pos["symbol"]:
                    by_venue.setdefault(row["venue"], []).append(row)

    def ts(row: dict) -> int:
        return int(datetime.fromisoformat(row["settlement_ts"].replace("Z", "+00:00")).timestamp() * 1000)

    def own_mark(venue: str, at_ms: int) -> Decimal | None:
        marked = [(ts(r), Decimal(r["mark_price"])) for r in by_venue.get(venue, []) if r["mark_price"] and ts(r) <= at_ms]
        if not marked:
            return None
        t, m = max(marked)
        return m if at_ms - t <= 9 * 3_600_000 else None

    def price(venue: str, row: dict) -> Decimal:
        if row["mark_price"]:
            return Decimal(row["mark_price"])
        own = own_mark(venue, ts(row))
        if own is not None:
            return own
        fresh = sorted(m for v in by_venue if (m := own_mark(v, ts(row))) is not None)
        mid = len(fresh) // 2
        return fresh[mid] if len(fresh) % 2 else (fresh[mid - 1] + fresh[mid]) / 2

    expected = Decimal(0)
    for venue, sign in ((pos["long_venue"], -1), (pos["short_venue"], 1)):
        for row in by_venue[venue]:
            if pos["opened_at_ts_ms"] < ts(row) <= pos["closed_at_ts_ms"]:
                expected += sign * Decimal(row["rate"]) * size * price(venue, row)
    recorded = sum(Decimal(r[0]) for r in query(db, "SELECT amount_usd FROM funding_payments WHERE position_id = ?",
                                                 (pos["id"],)))
    assert recorded == expected
