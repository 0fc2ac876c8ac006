"""The emulator's venue state: one simulated market and one paper matching engine behind every dialect.

``EmulatorCore`` owns
- a ``SimulatedMarket`` (prices, funding processes, books) whose simulated venues stand in for the
  emulated ones (bybit <- sim-mixed, binanceusdm <- sim-8h, hyperliquid <- sim-hourly, okx <- sim-okx-like);
- a ``PaperExecutor`` on a durable ``VenueStore`` (orders, fills, positions, balances, funding
  payments survive an emulator restart; the emulator clock is stored there too);
- the funding schedule: per venue and symbol interval (overridable at run time: the
  "interval change" fault), settled at UTC-aligned interval boundaries on the emulator clock;
- the book update ids (per venue/symbol sequence numbers the stream dialects publish).

Time: ``now_ms()`` runs ``speed`` times faster than the wall clock from where it last stopped (never
backwards across restarts), or only moves through ``advance_ms`` when the clock is manual. Request
signatures are checked against the WALL clock (plus any injected skew), as a venue would.

Nothing here does network I/O; the dialect modules translate HTTP/WebSocket requests into calls on
this object, and ``step()`` is driven by the server's ticker task (or by tests).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    FundingQuote,
    FundingSettlement,
    Instrument,
    InstrumentKind,
    OrderBook,
    spot_market,
)
from paper.emulator.spot import SpotLedger
from paper.executor import PaperExecutor
from paper.sim_market import SimMarketConfig, SimulatedMarket
from paper.sim_venues import VENUE_PROFILES
from paper.venue_store import StoredOrder, VenueStore, VenueWrite

MS_PER_HOUR = 3_600_000
CLOCK_KEY = "emulator_clock_ms"
RATE_HISTORY_KEPT = 500  # settled rates per venue/symbol that the history endpoints can return


@dataclass(frozen=True, slots=True)
class VenueDialect:
    """Static facts of one emulated venue."""

    name: str  # the ccxt id: bybit, binanceusdm, hyperliquid, okx
    sim_venue: str  # the simulated venue (paper.sim_venues) that drives its prices and funding
    symbol_format: str  # venue symbol from the canonical base asset
    rate_decimals: int  # funding rates published with this many decimals
    settle_coin: str
    spot: bool = False  # also serves a spot market (paper.emulator.spot)
    unified_wallet: bool = True  # spot trades move the perp wallet's quote coin (Bybit UTA); False: own spot wallet


DIALECTS: dict[str, VenueDialect] = {
    "bybit": VenueDialect("bybit", "sim-mixed", "{symbol}USDT", 8, "USDT", spot=True),
    "binanceusdm": VenueDialect("binanceusdm", "sim-8h", "{symbol}USDT", 8, "USDT", spot=True, unified_wallet=False),
    "hyperliquid": VenueDialect("hyperliquid", "sim-hourly", "{symbol}", 8, "USDC"),
    "okx": VenueDialect("okx", "sim-okx-like", "{symbol}-USDT-SWAP", 8, "USDT"),
}
# Spot fees (base tier, bps): Bybit spot 0.1 % maker and taker.
SPOT_FEES: dict[str, FeeSchedule] = {"bybit": FeeSchedule(maker_bps=Decimal(10), taker_bps=Decimal(10)),
                                     "binanceusdm": FeeSchedule(maker_bps=Decimal(10), taker_bps=Decimal(10))}
# Spot trades this far below the perp's book (bps): the basis a positive funding rate goes with.
SPOT_DISCOUNT_BPS = Decimal(2)
SPOT_LOT_DIVISOR = 1000
DEFAULT_SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB")
# Per-symbol intervals that differ from the venue's usual one, as on the real venues.
DEFAULT_INTERVAL_OVERRIDES: dict[str, dict[str, int]] = {
    "bybit": {"SOL": 4},
    "binanceusdm": {"XRP": 4},
}


class _Books:
    """``paper.executor.BookSource`` over the simulated market, in emulated venue names."""

    def __init__(self, core: EmulatorCore) -> None:
        self._core = core

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self._core.true_book(venue, symbol)

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self._core.instrument(venue, symbol)


class EmulatorExecutor(PaperExecutor):
    """The paper executor plus the read-outs a venue API needs (order lists, lookup by venue id)."""

    def orders(self, venue: str) -> list[StoredOrder]:
        """Every order of ``venue`` ever placed, oldest first."""
        return sorted((o for (v, _), o in self._orders.items() if v == venue), key=lambda o: o.seq)

    def stored_order(self, venue: str, client_order_id: str) -> StoredOrder | None:
        return self._orders.get((venue, client_order_id))

    def order_fills(self, venue: str, client_order_id: str) -> list:
        return list(self._order_fills.get((venue, client_order_id), ()))

    def venue_fills(self, venue: str) -> list:
        return list(self._venue_fills.get(venue, ()))

    def venue_funding(self, venue: str) -> list:
        return list(self._funding.get(venue, ()))

    def position_state(self, venue: str, symbol: str):
        return self._position(venue, symbol)

    def all_positions(self, venue: str) -> list:
        return [p for (v, _), p in sorted(self._positions.items()) if v == venue]

    def balance_state(self, venue: str):
        return self._balance(venue)


class RateHistory:
    """Settled funding rates (the venues' public funding history), in their own table of the state file.

    Kept apart from ``VenueStore`` (account state) on its own connection; in memory only without a file."""

    def __init__(self, path: str | Path | None) -> None:
        self._conn = None
        if path is not None:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS emulator_funding_rates (venue TEXT NOT NULL, symbol TEXT NOT NULL, "
                "ts_ms INTEGER NOT NULL, rate TEXT NOT NULL, mark_price TEXT NOT NULL, "
                "PRIMARY KEY (venue, symbol, ts_ms))")

    def load(self) -> dict[tuple[str, str], list[tuple[int, Decimal, Decimal]]]:
        out: dict[tuple[str, str], list[tuple[int, Decimal, Decimal]]] = {}
        if self._conn is None:
            return out
        for venue, symbol, ts_ms, rate, mark in self._conn.execute(
                "SELECT venue, symbol, ts_ms, rate, mark_price FROM emulator_funding_rates ORDER BY ts_ms"):
            out.setdefault((venue, symbol), []).append((ts_ms, Decimal(rate), Decimal(mark)))
        for history in out.values():
            del history[:-RATE_HISTORY_KEPT]
        return out

    def add(self, settlements: list[FundingSettlement]) -> None:
        if self._conn is None or not settlements:
            return
        self._conn.executemany(
            "INSERT OR IGNORE INTO emulator_funding_rates (venue, symbol, ts_ms, rate, mark_price) VALUES (?, ?, ?, ?, ?)",
            [(s.venue, s.symbol, s.ts_ms, str(s.rate), str(s.mark_price)) for s in settlements])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def venue_order_number(venue_order_id: str | None) -> int:
    """The numeric part of a paper venue order / trade id (``bybit-o12`` -> 12)."""
    if not venue_order_id:
        return 0
    tail = venue_order_id.rsplit("-", 1)[-1]
    return int(tail[1:]) if tail[1:].isdigit() else 0


class EmulatorCore:
    """Market + matching + funding schedule of the emulated venues (see the module docstring)."""

    def __init__(
        self,
        venues: tuple[str, ...],
        *,
        symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
        seed: int = 0,
        speed: float = 1.0,
        state_path: str | Path | None = None,
        manual_clock: bool = False,
        start_ts_ms: int | None = None,
        step_seconds: int | None = None,
        interval_overrides: dict[str, dict[str, int]] | None = None,
        starting_balance_usd: Decimal = Decimal(100_000),
        wall_ms: Callable[[], int] | None = None,
        spot_starting_coins: dict[str, dict[str, Decimal]] | None = None,
    ) -> None:
        unknown = [v for v in venues if v not in DIALECTS]
        if unknown or not venues:
            raise ValueError(f"unknown venues {unknown or venues}; known: {sorted(DIALECTS)}")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.venues = tuple(venues)
        self.symbols = tuple(symbols)
        self.dialects = {v: DIALECTS[v] for v in venues}
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.store = VenueStore.open(state_path) if state_path else VenueStore.in_memory()
        saved_clock = self.store.load().counters.get(CLOCK_KEY, 0)
        start = start_ts_ms if start_ts_ms is not None else self._wall_ms()
        start = max(start, saved_clock)
        self.speed = speed
        self.manual_clock = manual_clock
        self._anchor_sim_ms = start
        self._anchor_wall_ms = self._wall_ms()
        self._manual_now_ms = start
        if step_seconds is None:
            step_seconds = 1 if speed <= 20 else 60
        self.market = SimulatedMarket(
            SimMarketConfig(venues=tuple(d.sim_venue for d in self.dialects.values()), symbols=self.symbols,
                            step_seconds=step_seconds),
            seed=seed, start_ts_ms=start,
        )
        self._last_ts_ms = start
        self._persisted_clock_ms = 0
        self._market_step_ts = self._book_step()
        self.intervals: dict[tuple[str, str], int] = {}
        overrides = DEFAULT_INTERVAL_OVERRIDES if interval_overrides is None else interval_overrides
        for venue, d in self.dialects.items():
            for symbol in self.symbols:
                hours = int(self.market.instrument(d.sim_venue, symbol).funding_interval_hours)
                self.intervals[(venue, symbol)] = overrides.get(venue, {}).get(symbol, hours)
        self.fees: dict[str, FeeSchedule] = {v: VENUE_PROFILES[d.sim_venue].fees for v, d in self.dialects.items()}
        self.executor = EmulatorExecutor(
            _Books(self), self.fees, store=self.store, clock_now_ms=self.now_ms,
            starting_balance_usd=starting_balance_usd,
        )
        self.book_seq: dict[tuple[str, str], int] = {(v, s): 1 for v in venues for s in self.symbols}
        self.rate_history = RateHistory(state_path)
        self.settled_rates: dict[tuple[str, str], list[tuple[int, Decimal, Decimal]]] = self.rate_history.load()
        self.leverage: dict[tuple[str, str], int] = {}
        self.listeners: list[Callable[[str, object], None]] = []  # (event kind, payload)
        self.skew_ms: dict[str, int] = {}  # injected clock skew of each venue's own clock
        self._spot_books: dict[tuple[str, str], tuple[OrderBook, OrderBook]] = {}  # perp book -> derived spot book
        self.spot: dict[str, SpotLedger] = {}
        for venue, d in self.dialects.items():
            if d.spot:
                self.spot[venue] = SpotLedger(
                    venue, quote_coin=d.settle_coin, fees=SPOT_FEES[venue],
                    book=lambda symbol, v=venue: self.spot_book(v, symbol),
                    instrument=lambda symbol, v=venue: self.spot_instrument(v, symbol),
                    now_ms=self.now_ms,
                    quote_balance=(lambda v=venue: self.executor.balance_state(v).balance_usd) if d.unified_wallet
                    else (lambda: starting_balance_usd),  # a separate spot wallet starts with its own USDT
                    state_path=state_path, starting_coins=(spot_starting_coins or {}).get(venue))
        self.absurd_books: dict[tuple[str, str], Decimal] = {}  # (venue, symbol) -> published price factor

    # ------------------------------------------------------------------ clocks
    def now_ms(self) -> int:
        """The emulated venues' clock (drives funding, fills, payload timestamps)."""
        if self.manual_clock:
            return self._manual_now_ms
        elapsed = self._wall_ms() - self._anchor_wall_ms
        return self._anchor_sim_ms + int(elapsed * self.speed)

    def server_time_ms(self, venue: str | None = None) -> int:
        """A venue's own clock (time endpoints, signature windows): the wall clock plus its injected skew."""
        return self._wall_ms() + (self.skew_ms.get(venue, 0) if venue else 0)

    def advance_ms(self, ms: int) -> list[FundingSettlement]:
        """Move the emulator clock forward by ``ms`` and run one step (funding settles at every
        boundary crossed). A running clock jumps and then keeps running at its speed from there."""
        if ms < 0:
            raise ValueError(f"ms must not be negative (the venue clock never goes back), got {ms}")
        if self.manual_clock:
            self._manual_now_ms += ms
        else:
            self._anchor_sim_ms = self.now_ms() + ms
            self._anchor_wall_ms = self._wall_ms()
        return self.step()

    # ------------------------------------------------------------------ venue data
    def venue_symbol(self, venue: str, symbol: str) -> str:
        return self.dialects[venue].symbol_format.format(symbol=symbol)

    def symbol_for(self, venue: str, venue_symbol: str) -> str | None:
        """Canonical symbol of ``venue_symbol`` on ``venue``, or None when not listed."""
        for symbol in self.symbols:
            if self.venue_symbol(venue, symbol) == venue_symbol:
                return symbol
        return None

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        if symbol not in self.symbols or venue not in self.dialects:
            return None
        base = self.market.instrument(self.dialects[venue].sim_venue, symbol)
        return Instrument(
            venue=venue, symbol=symbol, venue_symbol=self.venue_symbol(venue, symbol), tick_size=base.tick_size,
            lot_size_base=base.lot_size_base, min_size_base=base.min_size_base,
            funding_interval_hours=Decimal(self.intervals[(venue, symbol)]), min_notional_usd=base.min_notional_usd,
        )

    def true_book(self, venue: str, symbol: str) -> OrderBook | None:
        """The book the venue matches against (never affected by the ``absurd_book`` fault)."""
        if symbol not in self.symbols or venue not in self.dialects:
            return None
        return self.market.book(self.dialects[venue].sim_venue, symbol)

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """The book the venue PUBLISHES (REST and streams): the true book, or under the
        ``absurd_book`` fault every price multiplied by ``absurd_books[(venue, symbol)]`` (a corrupt
        feed; matching still uses ``true_book``)."""
        book = self.true_book(venue, symbol)
        factor = self.absurd_books.get((venue, symbol))
        if book is None or factor is None:
            return book
        return OrderBook(venue=book.venue, symbol=book.symbol, ts_ms=book.ts_ms,
                         bids=tuple(BookLevel(lv.price * factor, lv.size_base) for lv in book.bids),
                         asks=tuple(BookLevel(lv.price * factor, lv.size_base) for lv in book.asks))

    def quote(self, venue: str, symbol: str) -> FundingQuote | None:
        """The venue's current funding quote at ITS interval (the predicted rate of the next settlement)."""
        raw = self.market.quote(self.dialects[venue].sim_venue, symbol)
        if raw is None:
            return None
        hours = self.intervals[(venue, symbol)]
        rate = self._venue_rate(venue, raw, hours)
        interval_ms = hours * MS_PER_HOUR
        now = self.now_ms()
        return FundingQuote(
            venue=venue, symbol=symbol, rate_per_interval=rate, interval_hours=Decimal(hours),
            next_funding_ts_ms=(now // interval_ms + 1) * interval_ms, mark_price=raw.mark_price, ts_ms=now,
        )

    def _venue_rate(self, venue: str, raw: FundingQuote, hours: int) -> Decimal:
        """The simulated rate restated at the venue's interval and in its published precision."""
        quantum = Decimal(1).scaleb(-self.dialects[venue].rate_decimals)
        return (raw.rate_per_interval / raw.interval_hours * hours).quantize(quantum)

    def backfill_rate_history(self, hours: int) -> int:
        """Give every (venue, symbol) without settled rates a public funding history of the ``hours``
        before now, settled at its interval from a twin of the simulated market (same seed), as a real
        venue has history when a bot first connects (a fresh live bot warms its forecast from it).
        Persisted with the state; returns the number of settlements added."""
        empty = [key for key in self.intervals if not self.settled_rates.get(key)]
        if hours <= 0 or not empty:
            return 0
        added: list[FundingSettlement] = []
        for ts, twin in self.market.hourly_history(hours):
            for venue, symbol in empty:
                interval = self.intervals[(venue, symbol)]
                raw = None if ts % (interval * MS_PER_HOUR) else twin.quote(self.dialects[venue].sim_venue, symbol)
                if raw is None:
                    continue
                added.append(FundingSettlement(venue=venue, symbol=symbol, ts_ms=ts,
                                               rate=self._venue_rate(venue, raw, interval),
                                               interval_hours=Decimal(interval), mark_price=raw.mark_price))
        for s in added:
            history = self.settled_rates.setdefault((s.venue, s.symbol), [])
            history.append((s.ts_ms, s.rate, s.mark_price))
        for key in empty:
            del self.settled_rates.get(key, [])[:-RATE_HISTORY_KEPT]
        self.rate_history.add(added)
        return len(added)

    def spot_instrument(self, venue: str, symbol: str) -> Instrument | None:
        """The spot market of ``symbol`` on ``venue``: the perp's tick, a quantity step 1000 times finer
        (as on Bybit: BTC spot 0.000001 against the perp's 0.001), a 5 USDT minimum order value."""
        if venue not in self.spot or symbol not in self.symbols:
            return None
        perp = self.instrument(venue, symbol)
        lot = perp.lot_size_base / SPOT_LOT_DIVISOR
        return Instrument(venue=spot_market(venue), symbol=symbol, venue_symbol=perp.venue_symbol,
                          tick_size=perp.tick_size, lot_size_base=lot, min_size_base=lot,
                          funding_interval_hours=Decimal(1), min_notional_usd=Decimal(5), kind=InstrumentKind.SPOT)

    def spot_book(self, venue: str, symbol: str) -> OrderBook | None:
        """The spot book: the perp book moved ``SPOT_DISCOUNT_BPS`` down, onto the tick (bids down, asks
        up, so it never crosses), same depth. Derived once per perp book."""
        inst = self.spot_instrument(venue, symbol)
        perp = self.book(venue, symbol)
        if inst is None or perp is None:
            return None
        cached = self._spot_books.get((venue, symbol))
        if cached is not None and cached[0] is perp:
            return cached[1]
        factor = 1 - SPOT_DISCOUNT_BPS / 10_000
        tick = inst.tick_size

        def side(levels: tuple[BookLevel, ...], rounding: str) -> tuple[BookLevel, ...]:
            merged: dict[Decimal, Decimal] = {}
            for level in levels:
                price = (level.price * factor / tick).to_integral_value(rounding=rounding) * tick
                if price > 0:
                    merged[price] = merged.get(price, Decimal(0)) + level.size_base
            return tuple(BookLevel(price=p, size_base=q) for p, q in merged.items())

        book = OrderBook(venue=spot_market(venue), symbol=symbol, bids=side(perp.bids, "ROUND_FLOOR"),
                         asks=side(perp.asks, "ROUND_CEILING"), ts_ms=perp.ts_ms)
        self._spot_books[(venue, symbol)] = (perp, book)
        return book

    def set_interval(self, venue: str, symbol: str, hours: int) -> None:
        """Change a symbol's funding interval from now on (the "interval change" fault)."""
        if hours not in (1, 2, 4, 8):
            raise ValueError(f"hours must be 1, 2, 4 or 8, got {hours}")
        if (venue, symbol) not in self.intervals:
            raise KeyError(f"unknown instrument {venue}/{symbol}")
        self.intervals[(venue, symbol)] = hours
        self._emit("interval", (venue, symbol, hours))

    # ------------------------------------------------------------------ stepping
    def step(self) -> list[FundingSettlement]:
        """Bring the market to ``now_ms()``: settle funding at every boundary crossed, match resting
        orders, persist the clock, and tell listeners about new books."""
        target = self.now_ms()
        if target <= self._last_ts_ms:
            return []
        settlements: list[FundingSettlement] = []
        boundary = (self._last_ts_ms // MS_PER_HOUR + 1) * MS_PER_HOUR
        while boundary <= target:
            self.market.advance_to(boundary)
            settlements.extend(self._settle(boundary))
            boundary += MS_PER_HOUR
        self.market.advance_to(target)
        self._last_ts_ms = target
        step_no = self._book_step()
        if step_no != self._market_step_ts:
            self._market_step_ts = step_no
            self.executor.match_resting()
            for venue, ledger in self.spot.items():
                changed = ledger.match_resting()
                if changed:
                    self._emit("spot_orders", (venue, changed))
            for key in self.book_seq:
                self.book_seq[key] += 1
            self._emit("books", None)
        if settlements or target - self._persisted_clock_ms >= 1_000:
            self._persist_clock()
        return settlements

    def _persist_clock(self) -> None:
        """Store the venue clock so a restart never moves it backwards (at most once a second)."""
        self.store.write(VenueWrite(counters=((CLOCK_KEY, self._last_ts_ms),)))
        self._persisted_clock_ms = self._last_ts_ms

    def _book_step(self) -> int:
        step_ms = self.market.config.step_seconds * 1000
        return self.market.now_ts_ms // step_ms

    def _settle(self, ts_ms: int) -> list[FundingSettlement]:
        out = []
        for (venue, symbol), hours in self.intervals.items():
            if ts_ms % (hours * MS_PER_HOUR):
                continue
            quote = self.quote(venue, symbol)
            if quote is None:
                continue
            settlement = FundingSettlement(
                venue=venue, symbol=symbol, ts_ms=ts_ms, rate=quote.rate_per_interval,
                interval_hours=Decimal(hours), mark_price=quote.mark_price,
            )
            self.executor.settle_funding(settlement)
            history = self.settled_rates.setdefault((venue, symbol), [])
            history.append((ts_ms, settlement.rate, settlement.mark_price))
            del history[:-RATE_HISTORY_KEPT]
            out.append(settlement)
        self.rate_history.add(out)
        if out:
            self._emit("funding", out)
        return out

    def _emit(self, kind: str, payload: object) -> None:
        for listener in list(self.listeners):
            listener(kind, payload)

    def notify_orders(self, venue: str, client_order_ids: list[str]) -> None:
        """Tell stream listeners that these orders changed (private streams)."""
        self._emit("orders", (venue, client_order_ids))

    def notify_spot_orders(self, venue: str, client_order_ids: list[str]) -> None:
        """Tell stream listeners that these spot orders changed (private streams)."""
        self._emit("spot_orders", (venue, client_order_ids))

    def close(self) -> None:
        for ledger in self.spot.values():
            ledger.close()
        self._persist_clock()
        self.rate_history.close()
        self.store.close()
