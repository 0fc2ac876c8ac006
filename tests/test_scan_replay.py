"""``python -m bot scan --replay`` on the real funding history, checked against the CSV files by hand.

The expected values are recomputed here straight from the gzip CSVs (not through bot.core.history), with
the documented rules: the quote of (venue, symbol) at T is the last settlement at or before T of its
preferred series (USDT, else USDC, then the alphabetically first quote / venue symbol), no older than
9 h; a row without a mark price borrows the symbol's latest mark at or before T from any venue.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import assert_usage_error, run_bot, write_settings
from tests.shared_data import shared_data_dir

AT = "2026-03-01T00:00:00Z"
AT_MS = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp() * 1000)
MAX_AGE_MS = 9 * 3_600_000
QUOTE_PREFERENCE = ("USDT", "USDC")
TAKER_BPS = {"binance": Decimal("5"), "bybit": Decimal("5.5"), "hyperliquid": Decimal("4.5")}
BPS = Decimal("0.0001")
NOTIONAL_USD = Decimal("1000")  # strategy.notional_usd_per_position in the shipped settings
SLIPPAGE_BPS = Decimal("2")  # scan.estimated_slippage_bps in the shipped settings
TOLERANCE = Decimal("1e-18")


@dataclass(frozen=True)
class Settlement:
    ts_ms: int
    rate: Decimal
    interval_hours: Decimal
    mark: Decimal | None


@dataclass(frozen=True)
class Series:
    venue: str
    symbol: str
    quote: str
    venue_symbol: str
    rows: tuple[Settlement, ...]  # sorted by time

    @property
    def rank(self) -> tuple[int, str, str]:
        pref = QUOTE_PREFERENCE.index(self.quote) if self.quote in QUOTE_PREFERENCE else len(QUOTE_PREFERENCE)
        return (pref, self.quote, self.venue_symbol)


def _ts_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def load_series(funding_dir: Path, symbols: set[str]) -> list[Series]:
    """Every (venue, venue_symbol) series of ``symbols`` in the CSV files, read with the csv module."""
    raw: dict[tuple[str, str], tuple[str, str, list[Settlement]]] = {}
    for path in sorted(funding_dir.glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["symbol"] not in symbols:
                    continue
                key = (row["venue"], row["venue_symbol"])
                entry = raw.setdefault(key, (row["symbol"], row["quote"], []))
                mark = row.get("mark_price") or ""
                entry[2].append(Settlement(_ts_ms(row["settlement_ts"]), Decimal(row["rate"]),
                                           Decimal(row["interval_hours"]), Decimal(mark) if mark else None))
    return sorted(
        (Series(venue, symbol, quote, venue_symbol, tuple(sorted(rows, key=lambda s: s.ts_ms)))
         for (venue, venue_symbol), (symbol, quote, rows) in raw.items()),
        key=lambda s: (s.venue, s.symbol, s.quote, s.venue_symbol),
    )


def latest_mark(series: list[Series], symbol: str, at_ms: int) -> Decimal | None:
    """The symbol's latest mark at or before ``at_ms`` from any venue; preferred quote at a tie."""
    best: dict[int, tuple[tuple[int, str, str], Decimal]] = {}
    for s in series:
        if s.symbol != symbol:
            continue
        for row in s.rows:
            if row.mark is not None and row.ts_ms <= at_ms:
                held = best.get(row.ts_ms)
                if held is None or s.rank < held[0]:
                    best[row.ts_ms] = (s.rank, row.mark)
    return best[max(best)][1] if best else None


@dataclass(frozen=True)
class Leg:
    rate: Decimal
    interval_hours: Decimal
    mark: Decimal


def leg_at(series: list[Series], venue: str, symbol: str, at_ms: int) -> Leg:
    """What the bot could know about (venue, symbol) at ``at_ms``, by the rules in the docstring."""
    candidates = [s for s in series if s.venue == venue and s.symbol == symbol]
    assert candidates, (venue, symbol)
    chosen = min(candidates, key=lambda s: s.rank)
    settled = [row for row in chosen.rows if row.ts_ms <= at_ms]
    assert settled, (venue, symbol)
    last = settled[-1]
    assert at_ms - last.ts_ms <= MAX_AGE_MS, (venue, symbol, "stale quote was ranked")
    mark = last.mark if last.mark is not None else latest_mark(series, symbol, at_ms)
    assert mark is not None
    return Leg(last.rate, last.interval_hours, mark)


def lot_size(mark: Decimal) -> Decimal:
    """Replay instruments: lots worth $1-$10 (10^-exponent of the mark)."""
    return Decimal(10) ** -mark.adjusted()


@pytest.fixture(scope="module")
def funding_dir() -> Path:
    return shared_data_dir() / "funding"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def settings(workdir: Path) -> Path:
    return write_settings(workdir)


@pytest.fixture(scope="module")
def ranked(funding_dir: Path, settings: Path, workdir: Path) -> list[dict]:
    proc = run_bot("scan", "--replay", funding_dir, "--at", AT, "--json", "--limit", "200",
                   "--settings", settings, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) >= 3
    return rows


def _pick_rows(rows: list[dict]) -> list[dict]:
    """Three distinct rows: the best, the best pairing an hourly venue with a 4h/8h one, the best
    with a 4h leg (else the last row)."""
    def intervals(r: dict) -> set[Decimal]:
        return {Decimal(r["long_interval_hours"]), Decimal(r["short_interval_hours"])}

    mixed = next(r for r in rows if intervals(r) in ({Decimal(1), Decimal(8)}, {Decimal(1), Decimal(4)}))
    four_hour = [r for r in rows if Decimal(4) in intervals(r) and r is not mixed and r is not rows[0]]
    picked: list[dict] = []
    for row in (rows[0], mixed, *four_hour[:1], rows[-1], *rows[1:]):
        if len(picked) < 3 and row not in picked:
            picked.append(row)
    return picked


def test_rows_match_hand_computation_from_csv(ranked: list[dict], funding_dir: Path) -> None:
    picked = _pick_rows(ranked)
    assert len(picked) == 3
    assert any(Decimal(r["long_interval_hours"]) == 1 or Decimal(r["short_interval_hours"]) == 1 for r in picked)
    series = load_series(funding_dir, {r["symbol"] for r in picked})
    for row in picked:
        long_leg = leg_at(series, row["long_venue"], row["symbol"], AT_MS)
        short_leg = leg_at(series, row["short_venue"], row["symbol"], AT_MS)
        where = f"{row['symbol']} {row['long_venue']}/{row['short_venue']}"

        assert Decimal(row["long_rate"]) == long_leg.rate, where
        assert Decimal(row["long_interval_hours"]) == long_leg.interval_hours, where
        assert Decimal(row["short_rate"]) == short_leg.rate, where
        assert Decimal(row["short_interval_hours"]) == short_leg.interval_hours, where

        spread = short_leg.rate / short_leg.interval_hours - long_leg.rate / long_leg.interval_hours
        assert abs(Decimal(row["spread_hourly"]) - spread) <= TOLERANCE, where
        assert abs(Decimal(row["apr"]) - spread * 8760) <= TOLERANCE * 8760, where

        # Size: the notional at the mid of the two marks, rounded down to the coarser lot.
        assert Decimal(row["long_price"]) == long_leg.mark, where
        assert Decimal(row["short_price"]) == short_leg.mark, where
        ref = (long_leg.mark + short_leg.mark) / 2
        step = max(lot_size(long_leg.mark), lot_size(short_leg.mark))
        size = (NOTIONAL_USD / ref // step) * step
        assert Decimal(row["size_base"]) == size, where

        # Fees: taker on entry AND exit, both legs, on each leg's notional.
        long_notional, short_notional = size * long_leg.mark, size * short_leg.mark
        one_way_fees = (long_notional * TAKER_BPS[row["long_venue"]] * BPS
                        + short_notional * TAKER_BPS[row["short_venue"]] * BPS)
        assert Decimal(row["fees_usd"]) == 2 * one_way_fees, where

        slippage = 2 * (long_notional + short_notional) * SLIPPAGE_BPS * BPS
        basis = max(Decimal(0), (long_leg.mark - short_leg.mark) * long_notional / long_leg.mark)
        assert abs(Decimal(row["costs"]) - (2 * one_way_fees + slippage + basis)) <= TOLERANCE, where
        expected_net = spread * 72 * size * ref - (2 * one_way_fees + slippage + basis)
        assert abs(Decimal(row["expected_net"]) - expected_net) <= TOLERANCE, where


def test_every_row_is_long_the_lower_hourly_rate_and_estimated(ranked: list[dict]) -> None:
    for row in ranked:
        long_hourly = Decimal(row["long_rate"]) / Decimal(row["long_interval_hours"])
        short_hourly = Decimal(row["short_rate"]) / Decimal(row["short_interval_hours"])
        assert long_hourly <= short_hourly, row
        assert row["costs_estimated"] is True, row
        assert row["long_venue"] != row["short_venue"], row
    nets = [Decimal(r["expected_net"]) for r in ranked]
    assert nets == sorted(nets, reverse=True)


def test_time_before_the_data_exits_2(funding_dir: Path, settings: Path, workdir: Path) -> None:
    proc = run_bot("scan", "--replay", funding_dir, "--at", "2020-01-01T00:00:00Z", "--json",
                   "--settings", settings, cwd=workdir)
    line = assert_usage_error(proc, "--at", "outside")
    assert proc.stdout == ""
    assert "2020-01-01" in line
