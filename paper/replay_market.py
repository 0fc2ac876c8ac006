"""A market feed replayed from history: real funding settlements, real prices, synthetic books.

At an instant ``now`` the replay shows what a bot could have known then, nothing later:

* **Quotes**: per (venue, symbol) the last settled rate and its interval. A live venue publishes
  its rate continuously; history holds only settlements, so a quote counts as fresh until its next
  settlement is overdue by more than ``max_quote_age_ms`` (``market.max_quote_age_seconds``),
  and is then stale (never traded on), exactly as a silent live feed would be.
* **Prices**: a venue's own price is its latest mark (funding rows) or price-file observation no
  older than ``max_price_age_ms``. A venue without a fresh own price trades at the symbol's
  **reference price**, the median of the other venues' fresh own prices; its quote is flagged
  ``mark_is_reference`` so no basis is ever charged against a price the venue never showed.
  A symbol with no fresh own price anywhere cannot be traded at that instant.
* **Books**: synthesised around the price from the venue's ``VenueCosts`` (half-spread, level
  step, depth per level), so fills, fees and slippage go through the paper executor.
* **Settlements**: ``advance_to`` returns every settlement passed, with its rate and the price the
  position is valued at (own mark at that instant, else the reference price).

* **Spot markets** (carry): price-file rows whose ``venue`` is a spot market name ``"<venue>:spot"``
  (``binance:spot``) make a spot leg: a quote of funding 0 while its own price is fresh (never a
  reference price: a spot market without its own price is not traded), a synthetic book from the spot
  market's costs (``[venues."binance:spot"]`` or the built-in spot figures), no settlements.

Pairing: the symbol of a leg is the file's ``symbol`` (the base asset). Perps margined in one of
``interchangeable_quotes`` (USDT, USDC by default) share the symbol; any other quote is kept apart
as ``SYMBOL-QUOTE`` so it never pairs with them. Legs record the venue's own instrument name.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from statistics import median

from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    FundingQuote,
    FundingSettlement,
    Instrument,
    InstrumentKind,
    OrderBook,
    is_spot,
)
from bot.core.history import FundingHistory, FundingSeries, PriceSeries, default_steps
from bot.core.venue_costs import VenueCosts

MS_PER_HOUR = 3_600_000
_BPS = Decimal("0.0001")


@dataclass(slots=True)
class _Leg:
    venue: str
    symbol: str  # pairing symbol
    series: FundingSeries
    interval_ms: tuple[int, ...]
    own_ts: tuple[int, ...]
    own_prices: tuple[Decimal, ...]
    i: int = -1  # index of the last settlement at or before now


class ReplayMarket:
    """``MarketFeed`` over loaded history (see the module docstring for what it shows when)."""

    def __init__(
        self,
        history: FundingHistory,
        prices: dict[tuple[str, str], PriceSeries],
        costs: dict[str, VenueCosts],
        *,
        max_quote_age_ms: int,
        max_price_age_ms: int,
        interchangeable_quotes: tuple[str, ...] = ("USDT", "USDC"),
    ) -> None:
        spot_series = {key: s for key, s in prices.items() if is_spot(key[0])}
        missing = sorted((set(history.venues()) | {v for v, _s in spot_series}) - set(costs))
        if missing:
            raise ValueError(f"no costs for venue(s) {', '.join(missing)}")
        self._costs = dict(costs)
        self._max_quote_age_ms = max_quote_age_ms
        self._max_price_age_ms = max_price_age_ms
        self._legs: dict[tuple[str, str], _Leg] = {}
        rank = {q: n for n, q in enumerate(interchangeable_quotes)}
        chosen: dict[tuple[str, str], FundingSeries] = {}
        for s in history.series:
            symbol = s.symbol if s.quote in rank else f"{s.symbol}-{s.quote}"
            key = (s.venue, symbol)
            held = chosen.get(key)
            if held is None or (rank.get(s.quote, len(rank)), s.venue_symbol) < (rank.get(held.quote, len(rank)), held.venue_symbol):
                chosen[key] = s
        for (venue, symbol), s in sorted(chosen.items()):
            points: dict[int, Decimal] = {t: m for t, m in zip(s.ts_ms, s.mark_prices) if m is not None}
            extra = prices.get((venue, s.symbol))
            if extra is not None:
                points.update(zip(extra.ts_ms, extra.prices))
            own_ts = tuple(sorted(points))
            self._legs[(venue, symbol)] = _Leg(
                venue=venue, symbol=symbol, series=s,
                interval_ms=tuple(int(h * MS_PER_HOUR) for h in s.interval_hours),
                own_ts=own_ts, own_prices=tuple(points[t] for t in own_ts),
            )
        self._by_symbol: dict[str, list[_Leg]] = {}
        for leg in self._legs.values():
            self._by_symbol.setdefault(leg.symbol, []).append(leg)
        # Spot markets: (market, symbol) -> its own prices (they never set a perp's reference price).
        self._spot: dict[tuple[str, str], PriceSeries] = {
            key: s for key, s in sorted(spot_series.items()) if s.ts_ms and key[1] in self._by_symbol}
        self._instruments = self._build_instruments()
        self._now_ms: int | None = None
        self._cache_ts: int | None = None
        self._quotes: list[FundingQuote] = []
        self._prices_now: dict[tuple[str, str], Decimal] = {}  # legs with a fresh quote, at now
        self._book_cache: dict[tuple[str, str], tuple[Decimal, int, OrderBook]] = {}
        self._own_now: dict[tuple[str, str], Decimal | None] = {}
        self._ref_now: dict[str, Decimal | None] = {}

    # ------------------------------------------------------------------ what the data covers
    def venues(self) -> list[str]:
        return sorted({leg.venue for leg in self._legs.values()} | {market for market, _s in self._spot})

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol)

    def untradable_symbols(self) -> list[str]:
        """Symbols with no price anywhere in the data (no marks, no price file): never traded."""
        return sorted({leg.symbol for key, leg in self._legs.items() if key not in self._instruments})

    def event_times(self, from_ts_ms: int, to_ts_ms: int) -> list[int]:
        """Every instant in [from, to] at which the data changes (settlements and prices)."""
        times: set[int] = set()
        seqs = [seq for leg in self._legs.values() for seq in (leg.series.ts_ms, leg.own_ts)]
        seqs += [s.ts_ms for s in self._spot.values()]
        for seq in seqs:
            lo, hi = bisect.bisect_left(seq, from_ts_ms), bisect.bisect_right(seq, to_ts_ms)
            times.update(seq[lo:hi])
        return sorted(times)

    @property
    def start_ts_ms(self) -> int:
        return min((leg.series.ts_ms[0] for leg in self._legs.values()), default=0)

    @property
    def end_ts_ms(self) -> int:
        return max((leg.series.ts_ms[-1] for leg in self._legs.values()), default=0)

    def venue_symbol(self, venue: str, symbol: str) -> str | None:
        if (venue, symbol) in self._spot:
            return f"{symbol}USDT"
        leg = self._legs.get((venue, symbol))
        return None if leg is None else leg.series.venue_symbol

    def series_for(self, venue: str, symbol: str) -> FundingSeries | None:
        leg = self._legs.get((venue, symbol))
        return None if leg is None else leg.series

    # ------------------------------------------------------------------ MarketFeed
    def fee_schedules(self) -> dict[str, FeeSchedule]:
        return {v: c.fees for v, c in self._costs.items() if v in set(self.venues())}

    def instruments(self) -> list[Instrument]:
        return list(self._instruments.values())

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self._instruments.get((venue, symbol))

    def quotes(self) -> list[FundingQuote]:
        self._refresh()
        return list(self._quotes)

    def books(self) -> list[OrderBook]:
        self._refresh()
        return [self._book_at(key, now_price) for key, now_price in self._prices_now.items()]

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        self._refresh()
        price = self._prices_now.get((venue, symbol))
        return None if price is None else self._book_at((venue, symbol), price)

    def advance_to(self, ts_ms: int) -> list[FundingSettlement]:
        """Move to ``ts_ms``; the settlements after the previous instant and at or before this one.

        The first call only positions the replay (nothing before the start is settled)."""
        first = self._now_ms is None
        if not first and ts_ms < self._now_ms:  # type: ignore[operator]
            raise ValueError("a replay cannot go back in time")
        out: list[FundingSettlement] = []
        for leg in self._legs.values():
            times = leg.series.ts_ms
            i = leg.i
            while i + 1 < len(times) and times[i + 1] <= ts_ms:
                i += 1
                if first:
                    continue
                price = self._settlement_price(leg, i)
                if price is None:
                    continue  # no price known at that instant: nothing can have been held there
                out.append(FundingSettlement(
                    venue=leg.venue, symbol=leg.symbol, ts_ms=times[i], rate=leg.series.rates[i],
                    interval_hours=leg.series.interval_hours[i], mark_price=price,
                ))
            leg.i = i
        self._now_ms = ts_ms
        out.sort(key=lambda x: (x.ts_ms, x.venue, x.symbol))
        return out

    def history_settlements(self, hours: int) -> list[FundingSettlement]:
        """The settlements of the ``hours`` before now (what a bot starting now would load)."""
        if self._now_ms is None or hours <= 0:
            return []
        lo_ts, hi_ts = self._now_ms - hours * MS_PER_HOUR, self._now_ms
        out = []
        for leg in self._legs.values():
            times = leg.series.ts_ms
            for i in range(bisect.bisect_left(times, lo_ts), bisect.bisect_left(times, hi_ts)):
                out.append(FundingSettlement(
                    venue=leg.venue, symbol=leg.symbol, ts_ms=times[i], rate=leg.series.rates[i],
                    interval_hours=leg.series.interval_hours[i], mark_price=Decimal(0)))
        out.sort(key=lambda x: (x.ts_ms, x.venue, x.symbol))
        return out

    def close_out(self) -> None:
        """End of the replay: from now on every leg trades at its last known price however old
        (books stay available, funding quotes still go stale), so every open position can be
        closed and realised. Only the backtest's final flatten uses it."""
        self._max_price_age_ms = 1 << 62
        self._max_quote_age_ms = 1 << 62
        self._cache_ts = None

    # ------------------------------------------------------------------ prices
    def own_price(self, venue: str, symbol: str, ts_ms: int) -> Decimal | None:
        """The venue's own latest price at ``ts_ms`` if no older than the price age limit."""
        leg = self._legs.get((venue, symbol))
        return None if leg is None else self._own_price(leg, ts_ms)

    def price(self, venue: str, symbol: str, ts_ms: int) -> tuple[Decimal, bool] | None:
        """(price, is_reference) of one leg at ``ts_ms``; None when no fresh price exists."""
        spot = self._spot.get((venue, symbol))
        if spot is not None:
            own = self._spot_price(spot, ts_ms)
            return None if own is None else (own, False)
        leg = self._legs.get((venue, symbol))
        if leg is None:
            return None
        own = self._own_price(leg, ts_ms)
        if own is not None:
            return own, False
        ref = self.reference_price(symbol, ts_ms)
        return None if ref is None else (ref, True)

    def reference_price(self, symbol: str, ts_ms: int) -> Decimal | None:
        """Median of the venues' fresh own prices of ``symbol`` at ``ts_ms`` (None if none)."""
        own = [p for leg in self._by_symbol.get(symbol, ()) if (p := self._own_price(leg, ts_ms)) is not None]
        if not own:
            return None
        return own[0] if len(own) == 1 else Decimal(median(own))

    def _own_price(self, leg: _Leg, ts_ms: int) -> Decimal | None:
        j = bisect.bisect_right(leg.own_ts, ts_ms) - 1
        if j < 0 or ts_ms - leg.own_ts[j] > self._max_price_age_ms:
            return None
        return leg.own_prices[j]

    def _spot_price(self, s: PriceSeries, ts_ms: int) -> Decimal | None:
        j = bisect.bisect_right(s.ts_ms, ts_ms) - 1
        if j < 0 or ts_ms - s.ts_ms[j] > self._max_price_age_ms:
            return None
        return s.prices[j]

    def _settlement_price(self, leg: _Leg, i: int) -> Decimal | None:
        mark = leg.series.mark_prices[i]
        if mark is not None:
            return mark
        found = self.price(leg.venue, leg.symbol, leg.series.ts_ms[i])
        return None if found is None else found[0]

    # ------------------------------------------------------------------ building
    def _refresh(self) -> None:
        now = self._now_ms
        if now is None or now == self._cache_ts:
            return
        self._own_now = {key: self._own_price(leg, now) for key, leg in self._legs.items()}
        self._ref_now = {}
        quotes: list[FundingQuote] = []
        prices: dict[tuple[str, str], Decimal] = {}
        for key, leg in self._legs.items():
            i = leg.i
            if i < 0 or key not in self._instruments:
                continue
            next_ts = leg.series.ts_ms[i] + leg.interval_ms[i]
            if now - next_ts > self._max_quote_age_ms:
                continue  # the next settlement is overdue: the feed went silent, the quote is stale
            price = self._own_now[key]
            is_reference = price is None
            if price is None:
                price = self._reference_now(leg.symbol)
                if price is None:
                    continue
            quotes.append(FundingQuote(
                venue=leg.venue, symbol=leg.symbol, rate_per_interval=leg.series.rates[i],
                interval_hours=leg.series.interval_hours[i], next_funding_ts_ms=next_ts,
                mark_price=price, ts_ms=now, mark_is_reference=is_reference,
            ))
            prices[key] = price
        for key, s in self._spot.items():
            price = self._spot_price(s, now)
            if price is None or key not in self._instruments:
                continue  # a spot market is traded at its own fresh price only
            quotes.append(FundingQuote(
                venue=key[0], symbol=key[1], rate_per_interval=Decimal(0), interval_hours=Decimal(1),
                next_funding_ts_ms=now + MS_PER_HOUR, mark_price=price, ts_ms=now,
            ))
            prices[key] = price
        self._quotes, self._prices_now, self._cache_ts = quotes, prices, now

    def _reference_now(self, symbol: str) -> Decimal | None:
        if symbol not in self._ref_now:
            own = [p for leg in self._by_symbol[symbol] if (p := self._own_now[(leg.venue, leg.symbol)]) is not None]
            self._ref_now[symbol] = None if not own else own[0] if len(own) == 1 else Decimal(median(own))
        return self._ref_now[symbol]

    def _book_at(self, key: tuple[str, str], price: Decimal) -> OrderBook:
        now_ms = self._now_ms or 0
        cached = self._book_cache.get(key)
        if cached is not None and cached[0] == price:
            if cached[1] == now_ms:
                return cached[2]
            book = cached[2]
            book = OrderBook(venue=book.venue, symbol=book.symbol, bids=book.bids, asks=book.asks, ts_ms=now_ms)
        else:
            book = synthetic_book(key[0], key[1], price, self._costs[key[0]], self._instruments[key], now_ms)
        self._book_cache[key] = (price, now_ms, book)
        return book

    def _build_instruments(self) -> dict[tuple[str, str], Instrument]:
        """Tick and lot from the symbol's first known price (stable for the whole replay)."""
        first_price: dict[str, Decimal] = {}
        for symbol, legs in self._by_symbol.items():
            firsts = [(leg.own_ts[0], leg.own_prices[0]) for leg in legs if leg.own_ts]
            if firsts:
                first_price[symbol] = min(firsts)[1]
        out: dict[tuple[str, str], Instrument] = {}
        for key, leg in self._legs.items():
            price = first_price.get(leg.symbol)
            if price is None:
                continue
            tick, lot = default_steps(price)
            out[key] = Instrument(
                venue=leg.venue, symbol=leg.symbol, venue_symbol=leg.series.venue_symbol,
                tick_size=tick, lot_size_base=lot, min_size_base=lot,
                funding_interval_hours=leg.series.interval_hours[-1],
                min_notional_usd=self._costs[leg.venue].min_notional_usd,
            )
        for (market, symbol), s in self._spot.items():
            price = first_price.get(symbol, s.prices[0])
            tick, lot = default_steps(price)
            out[(market, symbol)] = Instrument(
                venue=market, symbol=symbol, venue_symbol=f"{symbol}USDT", tick_size=tick,
                lot_size_base=lot / 10, min_size_base=lot / 10, funding_interval_hours=Decimal(1),
                min_notional_usd=self._costs[market].min_notional_usd, kind=InstrumentKind.SPOT,
            )
        return out


def synthetic_book(venue: str, symbol: str, price: Decimal, costs: VenueCosts, inst: Instrument,
                   ts_ms: int) -> OrderBook:
    """``costs.book_levels`` levels a side around ``price``: the touch ``book_half_spread_bps``
    away, each deeper level ``book_level_step_bps`` further, each worth ``book_depth_usd_per_level``
    (rounded down to the lot, at least one lot). Bids round down and asks up to the tick."""
    tick, lot = inst.tick_size, inst.lot_size_base
    size = max((costs.book_depth_usd_per_level / price / lot).to_integral_value(ROUND_FLOOR) * lot, lot)
    bids, asks = [], []
    for n in range(costs.book_levels):
        away = (costs.book_half_spread_bps + costs.book_level_step_bps * n) * _BPS
        bid = (price * (1 - away) / tick).to_integral_value(ROUND_FLOOR) * tick
        ask = (price * (1 + away) / tick).to_integral_value(ROUND_CEILING) * tick
        if bid > 0:
            bids.append(BookLevel(bid, size))
        asks.append(BookLevel(ask, size))
    return OrderBook(venue=venue, symbol=symbol, bids=tuple(bids), asks=tuple(asks), ts_ms=ts_ms)
