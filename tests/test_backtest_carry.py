"""``python -m bot backtest`` with carry: spot prices from a price file (venue ``binance:spot``) beside
perp funding files; carry and perp-perp results are reported apart, next to the references."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import report_json, run_bot, write_settings
from tests.shared_data import shared_data_dir
from tests.test_backtest import START, _iso, write_synthetic

CARRY = {"strategy": {"pair_kinds": '["perp_perp", "spot_perp"]'}, "forecast": {"mode": '"persistent"'},
         "exit": {"max_hold_hours": '"48"'}}


def write_spot_prices(directory: Path, days: int = 10) -> Path:
    """Binance spot ETH hourly, a few bps under the perp marks of ``write_synthetic`` (the documented
    price-file format: ``venue,symbol,ts,price`` with the venue named ``binance:spot``)."""
    lines = ["venue,symbol,ts,price\n"]
    for hour in range(days * 24 + 1):
        at = START + timedelta(hours=hour)
        perp = Decimal(3000) + Decimal(hour // 8 * 8) / 4
        lines.append(f"binance:spot,ETH,{_iso(at)},{perp * Decimal('0.9998')}\n")
    (directory / "binance-spot.csv").write_text("".join(lines), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def carry_backtest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bt-carry")
    data = write_spot_prices(write_synthetic(work / "data"))
    settings = write_settings(work, CARRY)
    db = work / "bt.sqlite"
    proc = run_bot("backtest", "--data", data, "--json", "--db", db, "--settings", settings, cwd=work, timeout_s=180)
    assert proc.returncode == 0, proc.stderr
    return {"summary": json.loads(proc.stdout), "db": db, "settings": settings, "work": work}


def test_carry_backtest_reports_carry_and_perp_perp_apart(carry_backtest: dict) -> None:
    s = carry_backtest["summary"]
    assert "binance:spot" in s["venues"]
    kinds = s["by_pair_kind"]
    assert "spot_perp" in kinds, kinds  # the synthetic perps pay 0.01 %/8h and 0.01 %/h: carry earns
    assert sum(row["positions"] for row in kinds.values()) == s["positions"]
    assert sum(Decimal(row["net_usd"]) for row in kinds.values()) == Decimal(s["net_usd"])
    carry = kinds["spot_perp"]
    assert Decimal(carry["funding_usd"]) > 0 and Decimal(carry["fees_usd"]) > 0
    assert set(s["references"]) == {"hold_best_pair", "naive"}  # beside the references (perp-perp)
    for r in s["references"].values():
        assert all(":spot" not in p for p in r["pairs"])


def test_carry_positions_in_the_backtest_database(carry_backtest: dict) -> None:
    report = report_json(carry_backtest["db"], carry_backtest["settings"], carry_backtest["work"])
    carry = [p for p in report["positions"] if p["pair_kind"] == "spot_perp" and p["filled"]]
    assert carry and all(p["long_venue"] == "binance:spot" and p["state"] == "closed" for p in carry)
    assert report["open_exposure"] == {}
    for p in carry:
        assert Decimal(p["realized_pnl_usd"]) == (Decimal(p["price_pnl_usd"]) + Decimal(p["funding_usd"])
                                                  - Decimal(p["fees_usd"]))


def test_text_summary_shows_the_pair_kinds(carry_backtest: dict, tmp_path: Path) -> None:
    work = carry_backtest["work"]
    proc = run_bot("backtest", "--data", work / "data", "--db", tmp_path / "bt2.sqlite", "--settings",
                   carry_backtest["settings"], cwd=work, timeout_s=180)
    assert proc.returncode == 0, proc.stderr
    assert "by pair kind" in proc.stdout and "spot_perp" in proc.stdout


def test_carry_is_off_by_default_even_with_spot_prices(tmp_path: Path) -> None:
    data = write_spot_prices(write_synthetic(tmp_path / "data"))
    settings = write_settings(tmp_path, {"forecast": {"mode": '"persistent"'}, "exit": {"max_hold_hours": '"48"'}})
    proc = run_bot("backtest", "--data", data, "--json", "--db", tmp_path / "bt.sqlite", "--settings", settings,
                   cwd=tmp_path, timeout_s=180)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["by_pair_kind"]) == {"perp_perp"}


def test_shared_year_month_with_spot_proxy_prices(tmp_path: Path) -> None:
    """Real perp funding of the shared data set for one month; Binance's spot prices are NOT in the
    shared data, so a spot price file is written from Binance's perp marks (a proxy: zero basis).
    It shows carry running over real funding beside perp-perp, not real spot history."""
    funding_dir = shared_data_dir() / "funding"  # skips with a reason when ../shared is absent
    data = tmp_path / "data"
    data.mkdir()
    lines = ["venue,symbol,ts,price\n"]
    for src in sorted(funding_dir.glob("*.csv.gz")):
        (data / src.name).write_bytes(src.read_bytes())
    with gzip.open(funding_dir / "binance.csv.gz", "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["symbol"] in ("BTC", "ETH", "SOL") and row["quote"] == "USDT" and row["mark_price"]:
                lines.append(f"binance:spot,{row['symbol']},{row['settlement_ts']},{row['mark_price']}\n")
    (data / "binance-spot.csv").write_text("".join(lines), encoding="utf-8")
    settings = write_settings(tmp_path, {"strategy": {"pair_kinds": '["perp_perp", "spot_perp"]'}})
    proc = run_bot("backtest", "--data", data, "--json", "--db", tmp_path / "bt.sqlite", "--settings", settings,
                   "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z", cwd=tmp_path, timeout_s=600)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert "binance:spot" in s["venues"]
    assert sum(Decimal(r["net_usd"]) for r in s["by_pair_kind"].values()) == Decimal(s["net_usd"])
    print(json.dumps({"by_pair_kind": s["by_pair_kind"], "net_usd": s["net_usd"],
                      "references": {k: v["net_usd"] for k, v in s["references"].items()}}))
