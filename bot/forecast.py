"""Spread forecast: what a pair will pay per hour, on average, over the holding horizon.

Measured on a year of real settlements, cross-venue spreads revert within hours: the spread at
an instant says almost nothing about the next days, while a slowly moving *level* (one venue
structurally paying more than another on an asset) persists. So each leg's hourly rate is tracked
as an exponentially weighted level (half-life ``level_half_life_hours``) plus its current
deviation from that level, and the forecast of the leg's average hourly rate over the horizon is

    f = level_weight x level + deviation_weight x (current - level)

The pair's forecast spread is ``f_short - f_long`` (the linear model makes the pair forecast the
difference of the legs' forecasts, so the scanner can rank pairs from per-leg numbers). The level
starts at zero (a prior of "no persistent spread") and earns its weight as history accumulates, so a
fresh start never trusts a few hours of data. ``python -m bot fit`` estimates the three parameters on
history by least squares of the realised average spread over the horizon (see ``bot.forecast_fit``).

``mode = "persistent"`` is the old rule (the current spread persists for the whole horizon), kept
for comparison; it is what the backtest's ``naive`` reference uses.

Everything here is pure: the tracker is updated with observations (time, hourly rate) and never
reads a clock.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from bot.core.domain import ZERO, FundingQuote, MarketSnapshot, is_spot

MS_PER_HOUR = 3_600_000
ForecastMode = Literal["mean_reverting", "persistent"]


@dataclass(frozen=True, slots=True)
class ForecastParams:
    """Parameters of the per-leg forecast (see the module docstring)."""

    mode: ForecastMode = "mean_reverting"
    level_half_life_hours: Decimal = Decimal(504)
    level_weight: Decimal = Decimal("0.728")
    deviation_weight: Decimal = Decimal("0.028")
    # The level samples each leg's rate at most this often (``LegLevel``): with a half-life of
    # weeks, a rate move inside one step would shift the level by < 4e-4 of the move.
    level_sample_ms: int = 15 * 60_000

    def leg_forecast(self, level: Decimal, current: Decimal) -> Decimal:
        """The leg's forecast average hourly rate over the horizon."""
        if self.mode == "persistent":
            return current
        return self.level_weight * level + self.deviation_weight * (current - level)


@functools.lru_cache(maxsize=4096)
def level_weight(elapsed_ms: int, half_life_hours: Decimal) -> Decimal:
    """Weight of ``elapsed_ms`` of a new rate in the level: ``1 - 0.5 ** (hours / half-life)``
    (a smoothing coefficient, computed in floating point and then fixed as a Decimal)."""
    hours = Decimal(elapsed_ms) / MS_PER_HOUR
    return Decimal(repr(1.0 - math.pow(0.5, float(hours / half_life_hours))))


@dataclass(slots=True)
class LegLevel:
    """One leg's exponentially weighted level of its hourly rate (piecewise-constant rate).

    The level samples the rate: an observation at least ``sample_ms`` after the current rate
    began (``ts_ms``) folds the time since into the level at that rate and starts the new one; an
    observation sooner only moves ``seen_ms`` (the sampled rate holds until the next sample).
    The level as of the latest observation (``seen_level``) folds the held stretch on read, in
    one step: the level is a closed form in time (``level_weight`` of the elapsed hours). With a
    half-life of weeks a sample every few minutes loses nothing a forecast could use, and a
    strategy pass over thousands of legs does Decimal work only for the legs due a sample
    (``bot.forecast_columns``). ``sample_ms=0`` samples every observation.
    """

    level: Decimal = ZERO  # folded up to ``ts_ms``
    rate: Decimal | None = None  # the sampled hourly rate, held since ``ts_ms``
    ts_ms: int | None = None  # when ``rate`` was sampled (the level includes time up to here)
    hours_seen: Decimal = ZERO  # hours with a known rate, up to ``ts_ms``
    seen_ms: int | None = None  # the latest observation (>= ``ts_ms``; None: ``ts_ms``)

    def observe(self, ts_ms: int, hourly_rate: Decimal, half_life_hours: Decimal, sample_ms: int = 0) -> None:
        """The leg's hourly rate is ``hourly_rate`` at ``ts_ms``: sampled (the time since the last
        sample folded into the level at that sample's rate) when the last sample is at least
        ``sample_ms`` old; otherwise only the latest observation time moves."""
        ts = self.ts_ms
        if ts is not None and self.rate is not None and ts <= ts_ms < ts + sample_ms:
            if self.seen_ms is None or ts_ms > self.seen_ms:
                self.seen_ms = ts_ms
            return
        if ts is not None and self.rate is not None and ts_ms > ts:
            elapsed_ms = ts_ms - ts
            self.level += level_weight(elapsed_ms, half_life_hours) * (self.rate - self.level)
            self.hours_seen += Decimal(elapsed_ms) / MS_PER_HOUR
        if ts is None or ts_ms >= ts:
            self.ts_ms = self.seen_ms = ts_ms
            self.rate = hourly_rate

    def _held_ms(self) -> int:
        """How long the sampled rate has held up to the latest observation (0: nothing to fold)."""
        seen, ts = self.seen_ms, self.ts_ms
        return 0 if seen is None or ts is None or seen <= ts or self.rate is None else seen - ts

    def seen_level(self, half_life_hours: Decimal) -> Decimal:
        """The level as of the latest observation (``seen_ms``): the held stretch folded in."""
        held_ms = self._held_ms()
        if not held_ms:
            return self.level
        return self.level + level_weight(held_ms, half_life_hours) * (self.rate - self.level)  # type: ignore[operator]

    def seen_hours(self) -> Decimal:
        """``hours_seen`` as of the latest observation."""
        held_ms = self._held_ms()
        return self.hours_seen + Decimal(held_ms) / MS_PER_HOUR if held_ms else self.hours_seen


@dataclass(slots=True)
class SpreadForecaster:
    """Levels of every leg the bot has seen, and the forecasts made from them."""

    params: ForecastParams = field(default_factory=ForecastParams)
    legs: dict[tuple[str, str], LegLevel] = field(default_factory=dict)
    # key -> (source quote, its leg's (level, seen_ms) when forecast, forecast quote): an unchanged quote of a leg
    # whose level did not move keeps its forecast quote object, so an incremental ranking sees
    # only the keys that really changed (``bot.incremental.changed_keys`` compares identity).
    _issued: dict[tuple[str, str], tuple[FundingQuote, tuple[Decimal, int | None] | None, FundingQuote]] = field(
        default_factory=dict)
    # key -> the quote object last observed: the same object again carries nothing new
    _observed: dict[tuple[str, str], FundingQuote] = field(default_factory=dict)

    def observe(self, venue: str, symbol: str, ts_ms: int, hourly_rate: Decimal) -> None:
        leg = self.legs.get((venue, symbol))
        if leg is None:
            leg = self.legs[(venue, symbol)] = LegLevel()
        leg.observe(ts_ms, hourly_rate, self.params.level_half_life_hours, self.params.level_sample_ms)

    def observe_quotes(self, quotes: dict[tuple[str, str], FundingQuote] | list[FundingQuote], now_ms: int) -> None:
        """Every usable quote's current hourly rate, as of ``now_ms``. A quote object already
        observed (a feed that did not update the key) is skipped: its rate held since, and the
        time it held is folded into the level at the leg's next update (the same level in exact
        arithmetic; a market that issues new quote objects each step, like the simulated market
        and the replay, is observed exactly as before)."""
        observed = self._observed
        for q in quotes.values() if isinstance(quotes, dict) else quotes:
            key = (q.venue, q.symbol)
            if observed.get(key) is q:
                continue
            observed[key] = q
            hourly = q.hourly_rate_or_none
            if hourly is not None and not is_spot(q.venue):  # spot funding is 0 by definition
                self.observe(q.venue, q.symbol, now_ms, hourly)

    def leg_forecast(self, venue: str, symbol: str, current_hourly: Decimal) -> Decimal:
        """Forecast average hourly rate of one leg given its current rate (zero level if unseen)."""
        leg = self.legs.get((venue, symbol))
        level = leg.seen_level(self.params.level_half_life_hours) if leg is not None else ZERO
        return self.params.leg_forecast(level, current_hourly)

    def spread_forecast(self, symbol: str, long_venue: str, short_venue: str,
                        long_hourly: Decimal, short_hourly: Decimal) -> Decimal:
        """Forecast average hourly spread of holding long ``long_venue`` / short ``short_venue``."""
        return self.leg_forecast(short_venue, symbol, short_hourly) - self.leg_forecast(long_venue, symbol, long_hourly)

    def forecast_snapshot(self, snapshot: MarketSnapshot) -> MarketSnapshot:
        """The snapshot with each quote's ranking rate set to its leg forecast: the scanner then
        ranks pairs by forecast spread (rates per interval stay the venue's current ones)."""
        if self.params.mode == "persistent":
            return snapshot
        quotes = {}
        issued, legs = self._issued, self.legs
        half_life = self.params.level_half_life_hours
        fresh: dict[tuple[str, str], tuple[FundingQuote, tuple[Decimal, int | None] | None, FundingQuote]] = {}
        for key, q in snapshot.quotes.items():
            hourly = q.hourly_rate_or_none
            if hourly is None:
                quotes[key] = q
                continue
            leg = legs.get((q.venue, q.symbol))
            state = (leg.level, leg.seen_ms) if leg is not None else None
            previous = issued.get(key)
            if previous is not None and previous[0] is q and previous[1] == state:
                out = previous[2]  # same quote, same level: the very same forecast
            else:
                out = self.forecast_quote(q, hourly, ZERO if leg is None else leg.seen_level(half_life))
            quotes[key] = out
            fresh[key] = (q, state, out)
        self._issued = fresh
        return replace(snapshot, quotes=quotes)

    def forecast_quote(self, q: FundingQuote, hourly: Decimal, level: Decimal) -> FundingQuote:
        """``q`` with its ranking rate set to the leg forecast at ``level`` (``hourly``: its usable
        hourly rate). The one place a forecast quote is made (``forecast_snapshot``, ``bot.array_pass``)."""
        return FundingQuote(
            venue=q.venue, symbol=q.symbol, rate_per_interval=q.rate_per_interval,
            interval_hours=q.interval_hours, next_funding_ts_ms=q.next_funding_ts_ms,
            mark_price=q.mark_price, ts_ms=q.ts_ms, mark_is_reference=q.mark_is_reference,
            # A spot leg pays no funding: its forecast is exactly 0 (never a fitted level).
            forecast_hourly_rate=ZERO if is_spot(q.venue) else self.params.leg_forecast(level, hourly))

    # -- persistence (the levels survive a restart through the database's kv table) ----------
    def to_text(self) -> str:
        """A compact text form of every leg's level (venue|symbol|level|rate|ts|hours per line), each
        as of its latest observation (``LegLevel.seen_level``; read back, it is sampled from there)."""
        return "\n".join(self.text_parts())

    def text_parts(self, legs_per_part: int = 500) -> Iterator[str]:
        """``to_text`` in parts of ``legs_per_part`` lines (``"\\n".join`` of the parts is
        ``to_text()``), so a caller on an event loop can let other work run between them. Each
        line is one leg's state when its part is made (every leg on its own consistent)."""
        items = sorted(self.legs.items())
        half_life = self.params.level_half_life_hours
        for start in range(0, len(items), max(1, legs_per_part)):
            yield "\n".join(
                f"{v}|{s}|{leg.seen_level(half_life)}|{'' if leg.rate is None else leg.rate}|"
                f"{'' if leg.ts_ms is None else leg.ts_ms if leg.seen_ms is None else leg.seen_ms}|{leg.seen_hours()}"
                for (v, s), leg in items[start:start + max(1, legs_per_part)])

    def load_text(self, text: str) -> int:
        """Restore levels saved by ``to_text``; returns how many legs were read. Bad lines are skipped."""
        count = 0
        for line in text.splitlines():
            parts = line.split("|")
            if len(parts) != 6:
                continue
            venue, symbol, level, rate, ts_ms, hours = parts
            try:
                self.legs[(venue, symbol)] = LegLevel(
                    level=Decimal(level), rate=Decimal(rate) if rate else None,
                    ts_ms=int(ts_ms) if ts_ms else None, hours_seen=Decimal(hours))
            except (ArithmeticError, ValueError):
                continue
            count += 1
        return count
