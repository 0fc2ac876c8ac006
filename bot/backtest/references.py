"""Two reference strategies over the same data and costs, to give the backtest's numbers a scale.

Both are computed directly from the replay (no engine, no latency, no faults), with the same
venue costs as the real run: taker fees on every execution and the synthetic book's half-spread
as slippage, one base size per pair (notional / price at entry), funding paid at each real
settlement on that size at the settlement's price.

* ``hold_best_pair`` (hindsight): the single (symbol, long venue, short venue) whose funding over the
  whole period was the highest, held from the first instant both legs have a price to the end.
  Nobody can know that pair in advance: it is an upper-bound style yardstick, not a strategy.
* ``naive``: at every data instant, enter the pair with the best *current* spread whenever the
  spread, assumed to persist for ``horizon_hours``, beats all costs by ``min_expected_net_usd``
  (the rule the bot used before it forecast spreads); exit after ``horizon_hours``, or earlier,
  after ``min_hold_hours``, once the current spread of the held pair is negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.domain import ZERO, is_spot
from bot.core.venue_costs import VenueCosts
from paper.replay_market import ReplayMarket

MS_PER_HOUR = 3_600_000
_BPS = Decimal("0.0001")


@dataclass(slots=True)
class ReferenceResult:
    """Money of one reference strategy (USD, Decimal)."""

    name: str
    description: str
    positions: int = 0
    funding_usd: Decimal = ZERO
    fees_usd: Decimal = ZERO
    slippage_usd: Decimal = ZERO
    price_pnl_usd: Decimal = ZERO  # market moves between the two legs' prices, slippage included
    pairs: list[str] = field(default_factory=list)
    closed: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (net USD, hours held) per position
    max_drawdown_usd: Decimal = ZERO
    peak_open_positions: int = 0
    _peak_usd: Decimal = ZERO

    @property
    def net_usd(self) -> Decimal:
        return self.funding_usd + self.price_pnl_usd - self.fees_usd

    def mark(self) -> None:
        """Record the running net (realised, funding accrued) for the drawdown."""
        net = self.net_usd
        self._peak_usd = max(self._peak_usd, net)
        self.max_drawdown_usd = max(self.max_drawdown_usd, self._peak_usd - net)


@dataclass(slots=True)
class _Held:
    symbol: str
    long_venue: str
    short_venue: str
    size_base: Decimal
    entry_ts_ms: int
    long_entry: Decimal
    short_entry: Decimal
    net_usd: Decimal = ZERO


def _execution_cost(costs: VenueCosts, size: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    """(taker fee, half-spread slippage) of one execution."""
    notional = size * price
    return notional * costs.taker_fee_bps * _BPS, notional * costs.book_half_spread_bps * _BPS


def _trade(result: ReferenceResult, costs: dict[str, VenueCosts], held: _Held, long_price: Decimal,
           short_price: Decimal) -> None:
    for venue, price in ((held.long_venue, long_price), (held.short_venue, short_price)):
        fee, slip = _execution_cost(costs[venue], held.size_base, price)
        result.fees_usd += fee
        result.slippage_usd += slip
        result.price_pnl_usd -= slip
        held.net_usd -= fee + slip


def _close(result: ReferenceResult, costs: dict[str, VenueCosts], held: _Held, market: ReplayMarket, ts_ms: int) -> None:
    long_p = market.price(held.long_venue, held.symbol, ts_ms)
    short_p = market.price(held.short_venue, held.symbol, ts_ms)
    long_exit = long_p[0] if long_p else held.long_entry
    short_exit = short_p[0] if short_p else held.short_entry
    _trade(result, costs, held, long_exit, short_exit)
    moved = held.size_base * ((long_exit - held.long_entry) - (short_exit - held.short_entry))
    result.price_pnl_usd += moved
    held.net_usd += moved
    result.closed.append((held.net_usd, Decimal(ts_ms - held.entry_ts_ms) / MS_PER_HOUR))


def _pay_funding(result: ReferenceResult, held: dict[str, _Held], settlements: list) -> None:
    for s in settlements:
        h = held.get(s.symbol)
        if h is None:
            continue
        if s.venue == h.long_venue:
            amount = -s.rate * h.size_base * s.mark_price
        elif s.venue == h.short_venue:
            amount = s.rate * h.size_base * s.mark_price
        else:
            continue
        result.funding_usd += amount
        h.net_usd += amount


def hold_best_pair(market: ReplayMarket, costs: dict[str, VenueCosts], events: list[int],
                   notional_usd: Decimal) -> ReferenceResult:
    """Hindsight: the pair with the most funding over the period, held start to end."""
    result = ReferenceResult("hold_best_pair", "hindsight: the single pair with the highest funding over the "
                             "whole period, held from start to end (not knowable in advance)")
    if not events:
        return result
    # Funding per unit of notional of every ordered pair, from the raw settlements.
    income: dict[tuple[str, str, str], Decimal] = {}
    per_leg: dict[tuple[str, str], Decimal] = {}
    market.advance_to(events[0])
    for ts in events:
        for s in market.advance_to(ts):
            key = (s.venue, s.symbol)
            per_leg[key] = per_leg.get(key, ZERO) + s.rate
    by_symbol: dict[str, list[str]] = {}
    for venue, symbol in per_leg:
        by_symbol.setdefault(symbol, []).append(venue)
    for symbol, venues in by_symbol.items():
        for long_v in venues:
            for short_v in venues:
                if long_v != short_v:
                    income[(symbol, long_v, short_v)] = per_leg[(short_v, symbol)] - per_leg[(long_v, symbol)]
    if not income:
        return result
    symbol, long_v, short_v = max(income, key=lambda k: (income[k], k))
    start = next((ts for ts in events if market.price(long_v, symbol, ts) is not None
                  and market.price(short_v, symbol, ts) is not None), None)
    if start is None:
        return result
    _replay_hold(result, market, costs, symbol, long_v, short_v, start, events, notional_usd)
    return result


def _replay_hold(result: ReferenceResult, market: ReplayMarket, costs: dict[str, VenueCosts], symbol: str,
                 long_v: str, short_v: str, start_ts: int, events: list[int], notional_usd: Decimal) -> None:
    """Value one held pair with prices and settlements from ``market`` (already walked once)."""
    long_p = market.price(long_v, symbol, start_ts)
    short_p = market.price(short_v, symbol, start_ts)
    if long_p is None or short_p is None:
        return
    price = (long_p[0] + short_p[0]) / 2
    size = notional_usd / price
    held = _Held(symbol, long_v, short_v, size, start_ts, long_p[0], short_p[0])
    _trade(result, costs, held, long_p[0], short_p[0])
    long_series, short_series = market.series_for(long_v, symbol), market.series_for(short_v, symbol)
    end = events[-1]
    for series, sign, venue in ((long_series, -1, long_v), (short_series, 1, short_v)):
        assert series is not None
        for ts, rate, mark in zip(series.ts_ms, series.rates, series.mark_prices):
            if start_ts < ts <= end:
                at = mark if mark is not None else (market.price(venue, symbol, ts) or (price, True))[0]
                result.funding_usd += sign * rate * size * at
                held.net_usd += sign * rate * size * at
    _close(result, costs, held, market, end)
    result.positions = 1
    result.peak_open_positions = 1
    result.pairs.append(f"{symbol} long {long_v} / short {short_v}")


def naive(market: ReplayMarket, costs: dict[str, VenueCosts], events: list[int], *, notional_usd: Decimal,
          horizon_hours: Decimal, min_expected_net_usd: Decimal, max_positions: int,
          min_hold_hours: Decimal) -> ReferenceResult:
    """Current-spread-persists entries, horizon-long holds (see the module docstring)."""
    result = ReferenceResult("naive", f"enter the best current spread when it beats all costs over "
                             f"{horizon_hours} h (spread assumed to persist); exit after {horizon_hours} h or "
                             f"on a negative spread after {min_hold_hours} h")
    held: dict[str, _Held] = {}
    if not events:
        return result
    market.advance_to(events[0])
    horizon_ms = int(horizon_hours * MS_PER_HOUR)
    min_hold_ms = int(min_hold_hours * MS_PER_HOUR)
    for ts in events:
        _pay_funding(result, held, market.advance_to(ts))
        result.mark()
        # Perp-perp reference: spot markets (carry legs) are left out, so it is the same with or
        # without spot price files.
        quotes = {(q.venue, q.symbol): q for q in market.quotes() if not is_spot(q.venue)}
        for symbol, h in list(held.items()):
            lq, sq = quotes.get((h.long_venue, symbol)), quotes.get((h.short_venue, symbol))
            spread = None if lq is None or sq is None else sq.hourly_rate - lq.hourly_rate
            age = ts - h.entry_ts_ms
            if age >= horizon_ms or (age >= min_hold_ms and spread is not None and spread < 0):
                _close(result, costs, h, market, ts)
                del held[symbol]
        if len(held) >= max_positions:
            continue
        best: tuple[Decimal, str, str, str, Decimal, Decimal] | None = None
        by_symbol: dict[str, list] = {}
        for q in quotes.values():
            by_symbol.setdefault(q.symbol, []).append(q)
        for symbol, qs in by_symbol.items():
            if symbol in held or len(qs) < 2:
                continue
            lo = min(qs, key=lambda q: (q.hourly_rate, q.venue))
            hi = max(qs, key=lambda q: (q.hourly_rate, q.venue))
            spread = hi.hourly_rate - lo.hourly_rate
            if spread <= 0:
                continue
            price = (lo.mark_price + hi.mark_price) / 2
            size = notional_usd / price
            cost = ZERO
            for venue in (lo.venue, hi.venue):
                fee, slip = _execution_cost(costs[venue], size, price)
                cost += 2 * (fee + slip)
            net = spread * horizon_hours * notional_usd - cost
            if net >= min_expected_net_usd and (best is None or net > best[0]):
                best = (net, symbol, lo.venue, hi.venue, lo.mark_price, hi.mark_price)
        if best is not None:
            _net, symbol, long_v, short_v, long_price, short_price = best
            size = notional_usd / ((long_price + short_price) / 2)
            h = _Held(symbol, long_v, short_v, size, ts, long_price, short_price)
            _trade(result, costs, h, long_price, short_price)
            held[symbol] = h
            result.positions += 1
            result.peak_open_positions = max(result.peak_open_positions, len(held))
            pair = f"{symbol} long {long_v} / short {short_v}"
            if pair not in result.pairs:
                result.pairs.append(pair)
    for h in held.values():
        _close(result, costs, h, market, events[-1])
    return result
