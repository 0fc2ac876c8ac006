"""``python -m bot scan --replay`` on the real funding history, checked against the CSV files by hand.

The expected values are recomputed here straight from the gzip CSVs (not through bot.core.history), with
the documented rules: the quote of (venue, symbol) at T is the last settlement at or before T of its
preferred series (USDT, else USDC, then the alphabetically first quote / venue symbol), fresh while its
next settlement is not overdue by more than market.max_quote_age_seconds (180 s); a venue's price is
its own latest mark no older than backtest.max_price_age_hours (9 h); a venue without one is priced
at the symbol's reference (the median of the fresh own marks) and no basis is charged against it: the
pair trades both legs at the own-marked leg's price. Lots come from the symbol's first mark in the data.
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
MAX_QUOTE_AGE_MS = 180_000
MAX_PRICE_AGE_MS = 9 * 3_600_000
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


@dataclass(frozen=True)
class Leg:
    rate: Decimal
    interval_hours: Decimal
    own_mark: Decimal | None


def own_mark(chosen: Series, at_ms: int) -> Decimal | None:
    marked = [row for row in chosen.rows if row.mark is not None and row.ts_ms <= at_ms]
    if not marked or at_ms - marked[-1].ts_ms > MAX_PRICE_AGE_MS:
        return None
    return marked[-1].mark


def leg_at(series: list[Series], venue: str, symbol: str, at_ms: int) -> Leg:
    """What the bot could know about (venue, symbol) at ``at_ms``, by the rules in the docstring."""
    candidates = [s for s in series if s.venue == venue and s.symbol == symbol]
    assert candidates, (venue, symbol)
    chosen = min(candidates, key=lambda s: s.rank)
    settled = [row for row in chosen.rows if row.ts_ms <= at_ms]
    assert settled, (venue, symbol)
    last = settled[-1]
    next_ms = last.ts_ms + int(last.interval_hours * 3_600_000)
    assert at_ms - next_ms <= MAX_QUOTE_AGE_MS, (venue, symbol, "stale quote was ranked")
    return Leg(last.rate, last.interval_hours, own_mark(chosen, at_ms))


def pair_prices(series: list[Series], symbol: str, long_leg: Leg, short_leg: Leg) -> tuple[Decimal, Decimal]:
    """Both legs' prices: own marks, or the own-marked leg's price (else the reference) for both."""
    if long_leg.own_mark is not None and short_leg.own_mark is not None:
        return long_leg.own_mark, short_leg.own_mark
    price = long_leg.own_mark or short_leg.own_mark
    if price is None:
        fresh = sorted(m for s in series if s.symbol == symbol and (m := own_mark(s, AT_MS)) is not None)
        assert fresh, symbol
        mid = len(fresh) // 2
        price = fresh[mid] if len(fresh) % 2 else (fresh[mid - 1] + fresh[mid]) / 2
    return price, price


def lot_size(series: list[Series], symbol: str) -> Decimal:
    """Replay instruments: lots worth $1-$10 (10^-exponent) of the symbol's first mark in the data."""
    first = min((row.ts_ms, row.mark) for s in series if s.symbol == symbol for row in s.rows if row.mark is not None)
    return Decimal(10) ** -first[1].adjusted()


@pytest.fixture(scope="module")
def funding_dir() -> Path:
    return shared_data_dir() / "funding"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def settings(workdir: Path) -> Path:
    # The cost arithmetic under test is the scanner's: rank today's spread over a 72 h horizon
    # (the forecast is checked by hand separately below).
    return write_settings(workdir, {"forecast": {"mode": '"persistent"'}, "strategy": {"horizon_hours": '"72"'}})


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

        # Size: the notional at the mid of the two prices, rounded down to the lot.
        long_mark, short_mark = pair_prices(series, row["symbol"], long_leg, short_leg)
        assert Decimal(row["long_price"]) == long_mark, where
        assert Decimal(row["short_price"]) == short_mark, where
        ref = (long_mark + short_mark) / 2
        step = lot_size(series, row["symbol"])
        size = (NOTIONAL_USD / ref // step) * step
        assert Decimal(row["size_base"]) == size, where

        # Fees: taker on entry AND exit, both legs, on each leg's notional.
        long_notional, short_notional = size * long_mark, size * short_mark
        one_way_fees = (long_notional * TAKER_BPS[row["long_venue"]] * BPS
                        + short_notional * TAKER_BPS[row["short_venue"]] * BPS)
        assert Decimal(row["fees_usd"]) == 2 * one_way_fees, where

        slippage = 2 * (long_notional + short_notional) * SLIPPAGE_BPS * BPS
        basis = max(Decimal(0), (long_mark - short_mark) * long_notional / long_mark)
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


def test_forecast_matches_hand_computation_from_csv(funding_dir: Path, workdir: Path) -> None:
    """With the shipped forecast: each leg's level is the half-life-weighted average of its hourly rate
    over the warm-up history (starting from zero), and the ranked spread is
    level_weight x level spread + deviation_weight x (today's spread - level spread)."""
    settings = write_settings(workdir, name="forecast.toml")
    proc = run_bot("scan", "--replay", funding_dir, "--at", AT, "--json", "--limit", "3", "--settings", settings,
                   cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    series = load_series(funding_dir, {row["symbol"]})
    half_life, w_level, w_dev, warmup_h = Decimal(504), Decimal("0.728"), Decimal("0.028"), 672

    def leg(venue: str) -> Decimal:
        chosen = min((s for s in series if s.venue == venue and s.symbol == row["symbol"]), key=lambda s: s.rank)
        points = [(r.ts_ms, r.rate / r.interval_hours) for r in chosen.rows
                  if AT_MS - warmup_h * 3_600_000 <= r.ts_ms < AT_MS]
        current = [r for r in chosen.rows if r.ts_ms <= AT_MS][-1]
        points.append((AT_MS, current.rate / current.interval_hours))
        level, previous = Decimal(0), None
        for ts_ms, hourly in points:
            if previous is not None:
                hours = Decimal(ts_ms - previous[0]) / 3_600_000
                weight = Decimal(repr(1.0 - 0.5 ** float(hours / half_life)))
                level += weight * (previous[1] - level)
            previous = (ts_ms, hourly)
        return w_level * level + w_dev * (points[-1][1] - level)

    expected = leg(row["short_venue"]) - leg(row["long_venue"])
    assert abs(Decimal(row["spread_hourly"]) - expected) <= Decimal("1e-20"), (row, expected)
    today = (Decimal(row["short_rate"]) / Decimal(row["short_interval_hours"])
             - Decimal(row["long_rate"]) / Decimal(row["long_interval_hours"]))
    assert Decimal(row["current_spread_hourly"]) == today
    assert Decimal(row["expected_net"]) == Decimal(row["spread_hourly"]) * 336 * Decimal(row["notional_usd"]) - Decimal(row["costs"])
