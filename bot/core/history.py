"""Historical funding settlements: load CSV files and view the market as it was at an instant.

File format (one row per realised settlement; ``.csv`` or gzip-compressed ``.csv.gz``; UTF-8;
comma-separated; a header row naming the columns, in any order; extra columns are ignored):

===============  ========  ===============================================================
column           required  meaning
===============  ========  ===============================================================
venue            yes       venue name, e.g. ``binance``
symbol           yes       canonical base asset, e.g. ``BTC``
quote            yes       quote asset, e.g. ``USDT`` (a venue may list BTC/USDT and BTC/USDC)
venue_symbol     yes       the venue's own instrument name, e.g. ``BTCUSDT``
settlement_ts    yes       the instant cash moved: ISO-8601 with a UTC offset
                           (``2026-03-01T08:00:00Z``) or integer milliseconds since the epoch
rate             yes       decimal fraction paid per interval, exactly as the venue reports it
                           (0.0001 = 0.01 %); longs pay shorts when positive
interval_hours   yes       the interval this rate covers (1, 4, 8...; may change over time)
mark_price       no        mark price at settlement (per contract); may be empty
contract_multiplier no     base units per contract (``1000`` for ``1000PEPEUSDT``); marks
                           are divided by it. Default 1. ``symbol`` must be the base asset
                           (``PEPE``): symbols are only paired when they are equal.
===============  ========  ===============================================================

Price files (optional, same directory, told apart by their header): one row per price
observation, header ``venue,symbol,ts,price`` (+ optional ``contract_multiplier``), for venues
whose funding rows carry no marks. ``ts`` as ``settlement_ts``; ``price`` positive, per contract.

Rows may come in any order; one instrument is keyed by (venue, venue_symbol). A row that breaks
these rules (missing column, unparsable or non-finite number, non-positive interval or mark,
naive timestamp, duplicate settlement, hourly rate beyond 1 %) raises ``HistoryFormatError``
naming the file, line and column. The shared data set in ``../shared/data/funding`` uses this
format.

``FundingHistory.snapshot_at`` replays what a bot could have known at an instant: the last
settled rate per (venue, symbol), with no look-ahead. It has no order books.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import operator
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from bot.core.domain import (
    FeeSchedule,
    FundingQuote,
    FundingSettlement,
    Instrument,
    MarketSnapshot,
)

REQUIRED_COLUMNS = ("venue", "symbol", "quote", "venue_symbol", "settlement_ts", "rate", "interval_hours")
OPTIONAL_COLUMNS = ("mark_price", "contract_multiplier")
PRICE_COLUMNS = ("venue", "symbol", "ts", "price")
MAX_ABS_RATE_PER_HOUR = Decimal("0.01")
MS_PER_HOUR = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)

DEFAULT_FEES: dict[str, FeeSchedule] = {  # base tier, as in bot/core/venue_costs.py
    "binance": FeeSchedule(maker_bps=Decimal("2"), taker_bps=Decimal("5")),
    "bybit": FeeSchedule(maker_bps=Decimal("2"), taker_bps=Decimal("5.5")),
    "hyperliquid": FeeSchedule(maker_bps=Decimal("1.5"), taker_bps=Decimal("4.5")),
}
DEFAULT_QUOTE_PREFERENCE = ("USDT", "USDC")
_MIN_NOTIONAL_USD = {"hyperliquid": Decimal(10)}
_DEFAULT_MIN_NOTIONAL_USD = Decimal(5)


class HistoryFormatError(ValueError):
    """A history file breaks the documented format; names the file, line and column."""

    def __init__(self, path: str, line: int, column: str, message: str) -> None:
        super().__init__(f"{path}:{line}: column {column!r}: {message}")
        self.path = path
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class FundingSeries:
    """All settlements of one instrument, sorted by time. Parallel tuples, one entry per row."""

    venue: str
    symbol: str
    quote: str
    venue_symbol: str
    ts_ms: tuple[int, ...]
    rates: tuple[Decimal, ...]  # per interval
    interval_hours: tuple[Decimal, ...]
    mark_prices: tuple[Decimal | None, ...]


class FundingHistory:
    """Loaded settlements plus point-in-time views of them.

    When a venue lists a symbol against several quotes (BTCUSDT and BTCUSDC), the snapshot and
    settlement views use one series per (venue, symbol): the first quote in ``quote_preference``
    that exists, else the alphabetically first. ``series`` keeps all of them.
    """

    def __init__(
        self,
        series: Iterable[FundingSeries],
        *,
        fees: dict[str, FeeSchedule] | None = None,
        quote_preference: tuple[str, ...] = DEFAULT_QUOTE_PREFERENCE,
    ) -> None:
        self.series: tuple[FundingSeries, ...] = tuple(
            sorted(series, key=lambda s: (s.venue, s.symbol, s.quote, s.venue_symbol))
        )
        self._fees = dict(DEFAULT_FEES if fees is None else fees)
        self._chosen = _choose_series(self.series, quote_preference)
        self._marks = _mark_index(self.series, quote_preference)

    def venues(self) -> list[str]:
        return sorted({s.venue for s in self.series})

    def primary_series(self) -> dict[tuple[str, str], FundingSeries]:
        """The one series per (venue, symbol) that snapshots and settlements use."""
        return dict(self._chosen)

    def symbols(self) -> list[str]:
        return sorted({s.symbol for s in self.series})

    @property
    def start_ts_ms(self) -> int:
        """First settlement instant in the data (0 when empty)."""
        return min((s.ts_ms[0] for s in self.series), default=0)

    @property
    def end_ts_ms(self) -> int:
        """Last settlement instant in the data (0 when empty)."""
        return max((s.ts_ms[-1] for s in self.series), default=0)

    def fee_schedules(self) -> dict[str, FeeSchedule]:
        """Fees for the venues in the data that have a known schedule."""
        venues = set(self.venues())
        return {v: f for v, f in self._fees.items() if v in venues}

    def mark_at(self, symbol: str, ts_ms: int) -> Decimal | None:
        """Latest mark price of ``symbol`` at or before ``ts_ms`` from any venue, else None."""
        index = self._marks.get(symbol)
        if index is None:
            return None
        times, marks = index
        i = bisect.bisect_right(times, ts_ms)
        return marks[i - 1] if i else None

    def snapshot_at(self, ts_ms: int, *, max_age_ms: int | None = None) -> MarketSnapshot:
        """What was known at ``ts_ms``: per (venue, symbol) the last settlement at or before it.

        Each quote carries that settlement's rate and interval, ``next_funding_ts_ms`` =
        settlement + interval, ``ts_ms`` = the settlement instant, and the row's mark price or
        else the latest mark of the symbol from any venue (no look-ahead); a quote with no
        known mark is left out, as is one older than ``max_age_ms``. Instruments get default
        tick/lot sizes from the mark's magnitude. No books.
        """
        quotes: dict[tuple[str, str], FundingQuote] = {}
        instruments: dict[tuple[str, str], Instrument] = {}
        for key, s in self._chosen.items():
            i = bisect.bisect_right(s.ts_ms, ts_ms) - 1
            if i < 0:
                continue
            settled_ts = s.ts_ms[i]
            if max_age_ms is not None and ts_ms - settled_ts > max_age_ms:
                continue
            mark = s.mark_prices[i]
            if mark is None:
                mark = self.mark_at(s.symbol, ts_ms)
            if mark is None:
                continue
            interval = s.interval_hours[i]
            quotes[key] = FundingQuote(
                venue=s.venue,
                symbol=s.symbol,
                rate_per_interval=s.rates[i],
                interval_hours=interval,
                next_funding_ts_ms=settled_ts + int(interval * MS_PER_HOUR),
                mark_price=mark,
                ts_ms=settled_ts,
            )
            tick, lot = default_steps(mark)
            instruments[key] = Instrument(
                venue=s.venue,
                symbol=s.symbol,
                venue_symbol=s.venue_symbol,
                tick_size=tick,
                lot_size_base=lot,
                min_size_base=lot,
                funding_interval_hours=interval,
                min_notional_usd=_MIN_NOTIONAL_USD.get(s.venue, _DEFAULT_MIN_NOTIONAL_USD),
            )
        return MarketSnapshot(
            now_ts_ms=ts_ms, quotes=quotes, instruments=instruments, fees=self.fee_schedules()
        )

    def settlements_between(self, after_ts_ms: int, until_ts_ms: int) -> list[FundingSettlement]:
        """Settlements with ``after_ts_ms < ts <= until_ts_ms``, in time order (then venue, symbol).

        Uses the same series and mark rule as ``snapshot_at``; a settlement with no known mark
        is left out.
        """
        out: list[FundingSettlement] = []
        for s in self._chosen.values():
            lo = bisect.bisect_right(s.ts_ms, after_ts_ms)
            hi = bisect.bisect_right(s.ts_ms, until_ts_ms)
            for i in range(lo, hi):
                mark = s.mark_prices[i]
                if mark is None:
                    mark = self.mark_at(s.symbol, s.ts_ms[i])
                if mark is None:
                    continue
                out.append(
                    FundingSettlement(
                        venue=s.venue,
                        symbol=s.symbol,
                        ts_ms=s.ts_ms[i],
                        rate=s.rates[i],
                        interval_hours=s.interval_hours[i],
                        mark_price=mark,
                    )
                )
        out.sort(key=lambda x: (x.ts_ms, x.venue, x.symbol))
        return out


def default_steps(price: Decimal) -> tuple[Decimal, Decimal]:
    """(tick size, lot size) for a price: about 6 significant digits, lots worth $1-$10."""
    exponent = price.adjusted()
    return Decimal(10) ** (exponent - 5), Decimal(10) ** -exponent


def load_funding_history(
    dir_or_files: str | Path | Iterable[str | Path],
    *,
    fees: dict[str, FeeSchedule] | None = None,
    quote_preference: tuple[str, ...] = DEFAULT_QUOTE_PREFERENCE,
) -> FundingHistory:
    """Read settlement CSV files (format in the module docstring) into a ``FundingHistory``.

    ``dir_or_files`` is a directory (every ``*.csv`` and ``*.csv.gz`` in it) or file paths; price
    files among them are skipped here (``load_market_history`` reads both).
    Raises ``FileNotFoundError`` when there is nothing to read and ``HistoryFormatError`` on
    the first bad header or row (also for truncated or undecodable files).
    """
    history, _prices = load_market_history(dir_or_files, fees=fees, quote_preference=quote_preference)
    return history


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Price observations of one (venue, symbol), per base unit, sorted by time."""

    venue: str
    symbol: str
    ts_ms: tuple[int, ...]
    prices: tuple[Decimal, ...]


def load_market_history(
    dir_or_files: str | Path | Iterable[str | Path],
    *,
    fees: dict[str, FeeSchedule] | None = None,
    quote_preference: tuple[str, ...] = DEFAULT_QUOTE_PREFERENCE,
) -> tuple[FundingHistory, dict[tuple[str, str], PriceSeries]]:
    """Read funding files and price files (told apart by their header) in one pass."""
    paths = _resolve_paths(dir_or_files)
    rows: dict[tuple[str, str], _SeriesBuilder] = {}
    prices: dict[tuple[str, str], dict[int, Decimal]] = {}
    parser = _RowParser()
    for path in paths:
        opener = gzip.open if path.name.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8", newline="") as handle:
                parser.read(str(path), handle, rows, prices)
        except HistoryFormatError:
            raise
        except (EOFError, OSError, UnicodeDecodeError, csv.Error, zlib.error) as exc:
            what = "file is truncated or corrupt" if isinstance(exc, (EOFError, OSError, zlib.error)) else "cannot be read"
            raise HistoryFormatError(str(path), parser.line, "", f"{what}: {exc}") from None
    if not rows:
        raise HistoryFormatError(str(paths[0]), 1, "", "no funding settlement rows in the given files")
    price_series = {
        key: PriceSeries(key[0], key[1], tuple(sorted(points)), tuple(points[t] for t in sorted(points)))
        for key, points in prices.items()
    }
    history = FundingHistory((b.build() for b in rows.values()), fees=fees, quote_preference=quote_preference)
    return history, price_series


def _resolve_paths(dir_or_files: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(dir_or_files, (str, Path)):
        root = Path(dir_or_files)
        if root.is_dir():
            paths = sorted(p for p in root.iterdir() if p.name.endswith((".csv", ".csv.gz")))
        else:
            paths = [root]
    else:
        paths = [Path(p) for p in dir_or_files]
    if not paths:
        raise FileNotFoundError(f"no *.csv or *.csv.gz funding files in {dir_or_files}")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"funding history file not found: {p}")
    return paths


class _SeriesBuilder:
    __slots__ = ("venue", "symbol", "quote", "venue_symbol", "rows", "seen")

    def __init__(self, venue: str, symbol: str, quote: str, venue_symbol: str) -> None:
        self.venue, self.symbol, self.quote, self.venue_symbol = venue, symbol, quote, venue_symbol
        self.rows: list[tuple[int, Decimal, Decimal, Decimal | None]] = []
        self.seen: set[int] = set()

    def build(self) -> FundingSeries:
        self.rows.sort(key=lambda r: r[0])
        ts, rates, intervals, marks = zip(*self.rows)
        return FundingSeries(
            venue=self.venue,
            symbol=self.symbol,
            quote=self.quote,
            venue_symbol=self.venue_symbol,
            ts_ms=ts,
            rates=rates,
            interval_hours=intervals,
            mark_prices=marks,
        )


class _RowParser:
    """Parses rows with small caches: timestamps and intervals repeat a lot across series."""

    def __init__(self) -> None:
        self.line = 0
        self._ts_cache: dict[str, int] = {}
        self._interval_cache: dict[str, Decimal] = {}

    def read(self, path: str, handle: TextIO, out: dict[tuple[str, str], _SeriesBuilder],
             prices: dict[tuple[str, str], dict[int, Decimal]]) -> None:
        self.line = 1
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise HistoryFormatError(path, 1, "", "empty file: expected a header row")
        names = [h.strip() for h in header]
        if "rate" not in names and all(c in names for c in PRICE_COLUMNS):
            self._read_prices(path, reader, names, prices)
            return
        for column in REQUIRED_COLUMNS:
            if column not in names:
                raise HistoryFormatError(path, 1, column, f"missing required column; header is {names}")
        idx = [names.index(c) for c in REQUIRED_COLUMNS]
        mark_idx = names.index("mark_price") if "mark_price" in names else None
        mult_idx = names.index("contract_multiplier") if "contract_multiplier" in names else None
        width = len(names)
        # Hot loop (millions of rows): the instrument columns, timestamps and (rate, interval)
        # pairs repeat, so each distinct raw text is validated once and cached.
        pick = operator.itemgetter(*idx)
        builders: dict[tuple[str, str, str, str], _SeriesBuilder] = {}
        rate_cache: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        ts_cache = self._ts_cache
        for row in reader:
            if len(row) != width:
                self.line = reader.line_num
                if not row:
                    continue
                raise HistoryFormatError(path, self.line, "", f"expected {width} fields, got {len(row)}")
            venue, symbol, quote, venue_symbol, ts_text, rate_text, interval_text = pick(row)
            builder = builders.get((venue, symbol, quote, venue_symbol))
            if builder is None:
                self.line = reader.line_num
                builder = builders[(venue, symbol, quote, venue_symbol)] = self._builder(
                    path, self.line, out, venue, symbol, quote, venue_symbol)
            ts_ms = ts_cache.get(ts_text)
            if ts_ms is None:
                self.line = reader.line_num
                ts_ms = self._timestamp(ts_text.strip(), path, self.line)
                ts_cache[ts_text] = ts_ms
            pair = rate_cache.get((rate_text, interval_text))
            if pair is None:
                self.line = reader.line_num
                pair = rate_cache[(rate_text, interval_text)] = self._rate(rate_text, interval_text, path, self.line)
            mark: Decimal | None = None
            if mark_idx is not None and row[mark_idx] and row[mark_idx].strip():
                self.line = line = reader.line_num
                mark = _decimal(row[mark_idx].strip(), path, line, "mark_price")
                if mark <= 0:
                    raise HistoryFormatError(path, line, "mark_price", f"must be positive, got {mark}")
                if mult_idx is not None and row[mult_idx].strip():
                    mark = mark / self._multiplier(row[mult_idx].strip(), path, line)
            seen = builder.seen
            if ts_ms in seen:
                self.line = reader.line_num
                raise HistoryFormatError(path, self.line, "settlement_ts",
                                         f"duplicate settlement {ts_text.strip()} for {venue}/{venue_symbol}")
            seen.add(ts_ms)
            builder.rows.append((ts_ms, pair[0], pair[1], mark))
        self.line = reader.line_num

    def _builder(self, path: str, line: int, out: dict[tuple[str, str], _SeriesBuilder], venue: str, symbol: str,
                 quote: str, venue_symbol: str) -> _SeriesBuilder:
        """The series of (venue, venue_symbol), checked against what earlier rows said it is."""
        venue, symbol, quote, venue_symbol = venue.strip(), symbol.strip(), quote.strip(), venue_symbol.strip()
        for column, value in (("venue", venue), ("symbol", symbol), ("venue_symbol", venue_symbol)):
            if not value:
                raise HistoryFormatError(path, line, column, "empty")
        key = (venue, venue_symbol)
        builder = out.get(key)
        if builder is None:
            builder = out[key] = _SeriesBuilder(venue, symbol, quote, venue_symbol)
        elif (builder.symbol, builder.quote) != (symbol, quote):
            raise HistoryFormatError(
                path, line, "symbol",
                f"{venue}/{venue_symbol} was {builder.symbol}/{builder.quote}, now {symbol}/{quote}",
            )
        return builder

    def _rate(self, rate_text: str, interval_text: str, path: str, line: int) -> tuple[Decimal, Decimal]:
        interval = self._interval(interval_text.strip(), path, line)
        rate = _decimal(rate_text.strip(), path, line, "rate")
        if abs(rate) > MAX_ABS_RATE_PER_HOUR * interval:
            raise HistoryFormatError(
                path, line, "rate", f"{rate_text.strip()} per {interval}h is beyond {MAX_ABS_RATE_PER_HOUR}/h"
            )
        return rate, interval

    def _read_prices(self, path: str, reader: Any, names: list[str],
                     prices: dict[tuple[str, str], dict[int, Decimal]]) -> None:
        idx = [names.index(c) for c in PRICE_COLUMNS]
        mult_idx = names.index("contract_multiplier") if "contract_multiplier" in names else None
        width = len(names)
        for row in reader:
            line = self.line = reader.line_num
            if not row:
                continue
            if len(row) != width:
                raise HistoryFormatError(path, line, "", f"expected {width} fields, got {len(row)}")
            venue, symbol, ts_text, price_text = (row[i].strip() for i in idx)
            for column, value in (("venue", venue), ("symbol", symbol)):
                if not value:
                    raise HistoryFormatError(path, line, column, "empty")
            ts_ms = self._timestamp(ts_text, path, line, column="ts")
            price = _decimal(price_text, path, line, "price")
            if price <= 0:
                raise HistoryFormatError(path, line, "price", f"must be positive, got {price_text!r}")
            if mult_idx is not None and row[mult_idx].strip():
                price = price / self._multiplier(row[mult_idx].strip(), path, line)
            prices.setdefault((venue, symbol), {})[ts_ms] = price

    def _multiplier(self, text: str, path: str, line: int) -> Decimal:
        value = _decimal(text, path, line, "contract_multiplier")
        if value <= 0:
            raise HistoryFormatError(path, line, "contract_multiplier", f"must be positive, got {text!r}")
        return value

    def _timestamp(self, text: str, path: str, line: int, column: str = "settlement_ts") -> int:
        cached = self._ts_cache.get(text)
        if cached is not None:
            return cached
        if text.isdigit():
            value = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise HistoryFormatError(path, line, column, f"not ISO-8601 or epoch ms: {text!r}") from None
            if parsed.tzinfo is None:
                raise HistoryFormatError(path, line, column, f"no UTC offset (write Z): {text!r}")
            value = (parsed - _EPOCH) // _ONE_MS
        self._ts_cache[text] = value
        return value

    def _interval(self, text: str, path: str, line: int) -> Decimal:
        cached = self._interval_cache.get(text)
        if cached is not None:
            return cached
        value = _decimal(text, path, line, "interval_hours")
        if value <= 0:
            raise HistoryFormatError(path, line, "interval_hours", f"must be positive, got {text!r}")
        self._interval_cache[text] = value
        return value


def _decimal(text: str, path: str, line: int, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise HistoryFormatError(path, line, column, f"not a number: {text!r}") from None
    if not value.is_finite():
        raise HistoryFormatError(path, line, column, f"not finite: {text!r}")
    return value


def _choose_series(
    series: tuple[FundingSeries, ...], quote_preference: tuple[str, ...]
) -> dict[tuple[str, str], FundingSeries]:
    rank = {q: i for i, q in enumerate(quote_preference)}
    chosen: dict[tuple[str, str], FundingSeries] = {}
    for s in series:
        key = (s.venue, s.symbol)
        current = chosen.get(key)
        if current is None or _quote_rank(s, rank) < _quote_rank(current, rank):
            chosen[key] = s
    return chosen


def _quote_rank(s: FundingSeries, rank: dict[str, int]) -> tuple[int, str, str]:
    return (rank.get(s.quote, len(rank)), s.quote, s.venue_symbol)


def _mark_index(
    series: tuple[FundingSeries, ...], quote_preference: tuple[str, ...]
) -> dict[str, tuple[list[int], list[Decimal]]]:
    """Per symbol, every known mark by instant; at equal instants the preferred quote wins."""
    rank = {q: i for i, q in enumerate(quote_preference)}
    by_symbol: dict[str, dict[int, tuple[tuple[int, str, str], Decimal]]] = {}
    for s in series:
        marks = by_symbol.setdefault(s.symbol, {})
        r = _quote_rank(s, rank)
        for ts, mark in zip(s.ts_ms, s.mark_prices):
            if mark is None:
                continue
            held = marks.get(ts)
            if held is None or r < held[0]:
                marks[ts] = (r, mark)
    index: dict[str, tuple[list[int], list[Decimal]]] = {}
    for symbol, marks in by_symbol.items():
        if marks:
            times = sorted(marks)
            index[symbol] = (times, [marks[t][1] for t in times])
    return index
