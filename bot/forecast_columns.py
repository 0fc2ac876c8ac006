"""The spread forecaster fed from a ``QuoteTable``: every key's level folded exactly, in one tight loop.

``SpreadForecaster.observe_quotes`` folds each new quote object into its leg's level
(``LegLevel.observe``). With 5,000 keys that is 5,000 method calls per strategy pass. Here the
same ``LegLevel`` objects (the forecaster's own, so ``to_text``, ``leg_forecast`` and a later
``observe`` see them) are updated with the same Decimal operations in the same order, so the levels
are identical to observing every key's quote; only the bookkeeping is per column:

- a regular key (``QuoteTable.regular``) is observed when the table's generation changed since it
  was last observed (the quote-object identity rule of ``observe_quotes``); other present keys by
  their exact quote object, as there;
- keys last observed at the previous pass time (nearly all) share one weight and one
  ``hours_seen`` increment: the loop does three Decimal operations per key and sets the rate only
  when the quote's rate or interval changed; the rest go through ``LegLevel.observe`` itself.

A float shadow of every level (``level_f``) and of the current forecast rate (``forecast_f``) is
kept for screening only (``bot.array_pass``); it is re-read from the exact levels every
``RESYNC_EVERY`` passes so it never drifts.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import numpy as np

from bot.core.domain import ZERO
from bot.forecast import MS_PER_HOUR, LegLevel, SpreadForecaster, level_weight
from bot.quote_table import QuoteTable

RESYNC_EVERY = 256
FOLD_SLICE_KEYS = 1_000  # ``observe_steps`` yields after this many keys (about 1 ms of Decimal work)
_HOURS_DEC: dict[int, Decimal] = {}


def _hours_dec(hours: int) -> Decimal:
    value = _HOURS_DEC[hours] = Decimal(hours)
    return value
_NO_TS = -(1 << 62)


class ColumnObserver:
    """Observes ``QuoteTable``s of one market into a ``SpreadForecaster`` (see the module docstring)."""

    def __init__(self, forecaster: SpreadForecaster) -> None:
        self.forecaster = forecaster
        self._keys: list[tuple[str, str]] | None = None
        self._legs: list[LegLevel | None] = []  # the forecaster's own objects (None: never observed)
        self._ts = np.zeros(0, dtype=np.int64)  # mirror of leg.ts_ms (_NO_TS: None)
        self._units = np.zeros(0, dtype=np.int64)  # rate last set from the table (-1 hours: not from it)
        self._hours = np.zeros(0, dtype=np.int64)
        self._gen = np.zeros(0, dtype=np.int64)  # generation a regular key was last observed at (-1: none)
        self._objects: dict[int, object] = {}  # quote object a non-regular key was last observed as
        self.level_f = np.zeros(0)
        self.rate_f = np.zeros(0)
        self._passes = 0
        self._exps_of: list | None = None
        self._exps_list: list[Decimal] = []

    def _bind(self, table: QuoteTable) -> None:
        legs = self.forecaster.legs
        self._keys = table.keys
        self._legs = [legs.get(key) for key in table.keys]
        n = len(table.keys)
        self._units = np.zeros(n, dtype=np.int64)
        self._hours = np.full(n, -1, dtype=np.int64)
        self._gen = np.full(n, -1, dtype=np.int64)
        self._objects = {}
        self._resync()

    def _resync(self) -> None:
        legs = self._legs
        self._ts = np.array([_NO_TS if leg is None or leg.ts_ms is None else leg.ts_ms for leg in legs],
                            dtype=np.int64)
        self.level_f = np.array([0.0 if leg is None else float(leg.level) for leg in legs])
        self.rate_f = np.array([np.nan if leg is None or leg.rate is None else float(leg.rate) for leg in legs])

    def observe(self, table: QuoteTable, now_ms: int) -> None:
        """Fold ``table``'s quotes into the levels as of ``now_ms`` (as ``observe_quotes`` would)."""
        for _ in self.observe_steps(table, now_ms):
            pass

    def observe_steps(self, table: QuoteTable, now_ms: int, slice_keys: int = FOLD_SLICE_KEYS) -> Iterator[None]:
        """``observe`` in slices: yields after every ``slice_keys`` keys folded, so a caller on an
        event loop can let other work run in between (``bot.array_pass``). At each yield every
        leg is consistent on its own (folded to ``now_ms`` or not yet touched, its mirrors with
        it); exhausting the generator gives exactly ``observe``'s levels."""
        if self._keys is not table.keys:
            self._bind(table)
        self._passes += 1
        gen = table.generation
        legs = self._legs
        fresh_arr = np.flatnonzero(table.regular & (self._gen != gen))
        half_life = self.forecaster.params.level_half_life_hours
        if len(fresh_arr):
            prev_ts = self._ts[fresh_arr]
            common_ts = int(np.max(prev_ts))
            fast_mask = (prev_ts == common_ts) & ~np.isnan(self.rate_f[fresh_arr]) & (common_ts != _NO_TS) \
                & (now_ms > common_ts)
            fast_all = fresh_arr[fast_mask]
            slow_arr = fresh_arr[~fast_mask]
            if len(fast_all):
                elapsed = now_ms - common_ts
                w = level_weight(elapsed, half_life)
                w_f = float(w)
                inc = Decimal(elapsed) / MS_PER_HOUR
                quanta = self._quanta(table)
                hours_dec = _HOURS_DEC
                for start in range(0, len(fast_all), max(1, slice_keys)):
                    if start:
                        yield  # the keys before ``start`` are folded, with their mirrors
                    fast = fast_all[start:start + max(1, slice_keys)]
                    for k in fast.tolist():
                        leg = legs[k]
                        level = leg.level
                        leg.level = level + w * (leg.rate - level)
                        leg.hours_seen += inc
                        leg.ts_ms = now_ms
                    changed = fast[(table.units[fast] != self._units[fast]) | (table.hours[fast] != self._hours[fast])]
                    for k, units, hours in zip(changed.tolist(), table.units[changed].tolist(),
                                               table.hours[changed].tolist()):
                        # exactly QuoteTable.hourly_decimal: (units x quantum) / interval; the quantum
                        # is 1E<exp> (coefficient 1), so quantum x units has units' digits at exponent
                        # exp: the very Decimal ``Decimal(units).scaleb(exp)`` makes, at a third of its cost
                        legs[k].rate = quanta[k] * units / (hours_dec.get(hours) or _hours_dec(hours))
                    self.level_f[fast] += w_f * (self.rate_f[fast] - self.level_f[fast])
                    self._ts[fast] = now_ms
                    self._mirror(table, fast, gen)
            for k in slow_arr.tolist():
                self._leg(k).observe(now_ms, table.hourly_decimal(k), half_life)
                self._sync_one(k)
            self._mirror(table, slow_arr, gen)
        objects = self._objects
        for k, quote in table.exact.items():
            if quote is None or objects.get(k) is quote:
                continue
            objects[k] = quote
            self._gen[k] = -1
            hourly = quote.hourly_rate_or_none
            if hourly is not None:
                self._leg(k).observe(now_ms, hourly, half_life)
                self._sync_one(k)
                self._hours[k] = -1
        if self._passes % RESYNC_EVERY == 0:
            self._resync()

    def _mirror(self, table: QuoteTable, keys: np.ndarray, gen: int) -> None:
        """``keys`` were observed from ``table`` (generation ``gen``): what the table said of them."""
        self._units[keys] = table.units[keys]
        self._hours[keys] = table.hours[keys]
        self.rate_f[keys] = table.hourly[keys]
        self._gen[keys] = gen

    def _quanta(self, table: QuoteTable) -> list[Decimal]:
        """Per key its venue's rate quantum ``1E<quantum_exp>`` (one shared object per venue)."""
        if self._exps_of is not table.keys:
            quanta = [Decimal(1).scaleb(e) for e in table.quantum_exp]
            self._exps_list = [q for q in quanta for _ in range(table.n_symbols)]
            self._exps_of = table.keys
        return self._exps_list

    def _leg(self, k: int) -> LegLevel:
        leg = self._legs[k]
        if leg is None:
            assert self._keys is not None
            leg = self._legs[k] = self.forecaster.legs.setdefault(self._keys[k], LegLevel())
        return leg

    def _sync_one(self, k: int) -> None:
        leg = self._leg(k)
        self._ts[k] = _NO_TS if leg.ts_ms is None else leg.ts_ms
        self.level_f[k] = float(leg.level)
        self.rate_f[k] = np.nan if leg.rate is None else float(leg.rate)

    def level(self, k: int) -> Decimal:
        """Key ``k``'s exact level (zero before any observation)."""
        leg = self._legs[k] if self._legs else None
        return ZERO if leg is None else leg.level


def warm_up(forecaster: SpreadForecaster, market: object, hours: int) -> int | None:
    """Fold the market's settlement history of the last ``hours`` into ``forecaster``, as observing
    each ``history_settlements`` entry's ``rate / interval_hours`` in time order would (the same
    Decimal operations per leg), from the market's columns (``history_rate_columns``) without a
    settlement object each. Returns how many settlements; None when the market has no columns."""
    columns_of = getattr(market, "history_rate_columns", None)
    if not callable(columns_of):
        return None
    keys, exps, n_symbols, columns = columns_of(hours)
    legs, half_life = forecaster.legs, forecaster.params.level_half_life_hours
    resolved: list[LegLevel | None] = [None] * len(keys)
    quanta = [Decimal(1).scaleb(e) for e in exps]  # 1E<exp>: quantum x units == Decimal(units).scaleb(exp)
    count = 0
    for ts_ms, due, units, interval in columns:
        for k, unit, hours_k in zip(due.tolist(), units.tolist(), interval.tolist()):
            leg = resolved[k]
            if leg is None:
                leg = resolved[k] = legs.get(keys[k]) or legs.setdefault(keys[k], LegLevel())
            # the settlement's rate / interval_hours: (units x quantum) / Decimal(hours)
            leg.observe(ts_ms, quanta[k // n_symbols] * unit / (_HOURS_DEC.get(hours_k) or _hours_dec(hours_k)),
                        half_life)
        count += len(due)
    return count
