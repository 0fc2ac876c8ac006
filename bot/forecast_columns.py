"""The spread forecaster fed from a ``QuoteTable``: every key's level sampled exactly, in one tight loop.

``SpreadForecaster.observe_quotes`` observes each new quote object into its leg's level
(``LegLevel.observe``). With 5,000 keys that is 5,000 method calls per strategy pass. Here the
same ``LegLevel`` objects (the forecaster's own, so ``to_text``, ``leg_forecast`` and a later
``observe`` see them) are updated with the same Decimal operations in the same order, so the levels
are identical to observing every key's quote; only the bookkeeping is per column:

- a regular key (``QuoteTable.regular``) is observed when the table's generation changed since it
  was last observed (the quote-object identity rule of ``observe_quotes``); other present keys by
  their exact quote object, as there;
- a leg whose last sample is younger than ``ForecastParams.level_sample_ms`` only has its latest
  observation time moved (no Decimal work: nearly every leg in nearly every pass); the legs due a
  sample are folded in a loop of three Decimal operations each, with one weight per elapsed time;
  the rest go through ``LegLevel.observe`` itself.

A float shadow of every level (``level_f``, at the leg's last sample, and ``seen_level_f``, as of
its latest observation) is kept for screening only (``bot.array_pass``); it is re-read from the
exact levels every ``RESYNC_EVERY`` passes so it never drifts.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import numpy as np

from bot.core.domain import ZERO
from bot.forecast import MS_PER_HOUR, LegLevel, SpreadForecaster, level_weight
from bot.quote_table import QuoteTable

RESYNC_EVERY = 256
FOLD_SLICE_KEYS = 1_000  # ``observe_steps`` yields after this many keys folded (about 1 ms of Decimal work)
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
        self._seen = np.zeros(0, dtype=np.int64)  # mirror of leg.seen_ms (_NO_TS: no ts_ms)
        self._gen = np.zeros(0, dtype=np.int64)  # generation a regular key was last observed at (-1: none)
        self._objects: dict[int, object] = {}  # quote object a non-regular key was last observed as
        self.level_f = np.zeros(0)  # float of leg.level (at its last sample)
        self.rate_f = np.zeros(0)  # float of leg.rate (the sampled rate; nan: none)
        self._seen_f: np.ndarray | None = None  # ``seen_level_f`` of the latest observation (cached)
        self._weights: dict[int, tuple[Decimal, Decimal]] = {}  # elapsed ms -> (level weight, hours)
        self._passes = 0
        self._exps_of: list | None = None
        self._exps_list: list[Decimal] = []
        self.folded = 0  # legs sampled through the column loop (for benchmarks and tests)

    def _bind(self, table: QuoteTable) -> None:
        legs = self.forecaster.legs
        self._keys = table.keys
        self._legs = [legs.get(key) for key in table.keys]
        self._gen = np.full(len(table.keys), -1, dtype=np.int64)
        self._objects = {}
        self._resync()

    def _resync(self) -> None:
        legs = self._legs
        self._ts = np.array([_NO_TS if leg is None or leg.ts_ms is None else leg.ts_ms for leg in legs],
                            dtype=np.int64)
        self._seen = np.array([_NO_TS if leg is None or leg.ts_ms is None else leg.ts_ms if leg.seen_ms is None
                               else leg.seen_ms for leg in legs], dtype=np.int64)
        self.level_f = np.array([0.0 if leg is None else float(leg.level) for leg in legs])
        self.rate_f = np.array([np.nan if leg is None or leg.rate is None else float(leg.rate) for leg in legs])
        self._seen_f = None

    def observe(self, table: QuoteTable, now_ms: int) -> None:
        """Observe ``table``'s quotes into the levels as of ``now_ms`` (as ``observe_quotes`` would)."""
        for _ in self.observe_steps(table, now_ms):
            pass

    def observe_steps(self, table: QuoteTable, now_ms: int, slice_keys: int = FOLD_SLICE_KEYS) -> Iterator[None]:
        """``observe`` in slices: yields after every ``slice_keys`` legs sampled, so a caller on an
        event loop can let other work run in between (``bot.array_pass``). At each yield every
        leg is consistent on its own (observed at ``now_ms`` or not yet touched, its mirrors with
        it); exhausting the generator gives exactly ``observe``'s levels."""
        if self._keys is not table.keys:
            self._bind(table)
        self._passes += 1
        self._seen_f = None
        gen = table.generation
        legs = self._legs
        params = self.forecaster.params
        half_life, sample_ms = params.level_half_life_hours, params.level_sample_ms
        fresh_arr = np.flatnonzero(table.regular & (self._gen != gen))
        if len(fresh_arr):
            ts = self._ts[fresh_arr]
            known = (ts != _NO_TS) & ~np.isnan(self.rate_f[fresh_arr]) & (now_ms >= ts) \
                & (now_ms >= self._seen[fresh_arr])
            held_mask = known & (now_ms - ts < sample_ms)  # LegLevel.observe's "not due a sample"
            due_mask = known & ~held_mask & (now_ms > ts)  # and its fold
            held = fresh_arr[held_mask]
            for k in held.tolist():  # the sampled rate holds: only the latest observation moves
                legs[k].seen_ms = now_ms  # type: ignore[union-attr]
            self._seen[held] = now_ms
            self._gen[held] = gen
            due_all = fresh_arr[due_mask]
            step = max(1, slice_keys)
            if len(due_all):
                quanta = self._quanta(table)
                hours_dec, weights = _HOURS_DEC, self._weights
                for start in range(0, len(due_all), step):
                    if start:
                        yield  # the legs before ``start`` are sampled, with their mirrors
                    due = due_all[start:start + step]
                    for k, units, hours, ts_k in zip(due.tolist(), table.units[due].tolist(),
                                                     table.hours[due].tolist(), self._ts[due].tolist()):
                        leg = legs[k]
                        elapsed = now_ms - ts_k
                        w, inc = weights.get(elapsed) or self._weight(elapsed, half_life)
                        level = leg.level  # type: ignore[union-attr]
                        leg.level = level + w * (leg.rate - level)  # type: ignore[union-attr,operator]
                        leg.hours_seen += inc  # type: ignore[union-attr]
                        leg.ts_ms = leg.seen_ms = now_ms  # type: ignore[union-attr]
                        # exactly QuoteTable.hourly_decimal: (units x quantum) / interval; the quantum
                        # is 1E<exp> (coefficient 1), so quantum x units has units' digits at exponent
                        # exp: the very Decimal ``Decimal(units).scaleb(exp)`` makes, at a third of its cost
                        leg.rate = quanta[k] * units / (hours_dec.get(hours) or _hours_dec(hours))  # type: ignore[union-attr]
                    self.folded += len(due)
                    hours_f = (now_ms - self._ts[due]) / (MS_PER_HOUR * float(half_life))
                    self.level_f[due] += (1.0 - np.power(0.5, hours_f)) * (self.rate_f[due] - self.level_f[due])
                    self.rate_f[due] = table.hourly[due]
                    self._ts[due] = now_ms
                    self._seen[due] = now_ms
                    self._gen[due] = gen
            for k in fresh_arr[~(held_mask | due_mask)].tolist():
                self._leg(k).observe(now_ms, table.hourly_decimal(k), half_life, sample_ms)
                self._sync_one(k)
                self._gen[k] = gen
        objects = self._objects
        for k, quote in table.exact.items():
            if quote is None or objects.get(k) is quote:
                continue
            objects[k] = quote
            self._gen[k] = -1
            hourly = quote.hourly_rate_or_none
            if hourly is not None:
                self._leg(k).observe(now_ms, hourly, half_life, sample_ms)
                self._sync_one(k)
        if self._passes % RESYNC_EVERY == 0:
            self._resync()

    def _weight(self, elapsed_ms: int, half_life: Decimal) -> tuple[Decimal, Decimal]:
        """``level_weight`` of ``elapsed_ms`` and its hours, as ``LegLevel.observe`` computes them."""
        if len(self._weights) > 4096:
            self._weights.clear()
        w_inc = self._weights[elapsed_ms] = (level_weight(elapsed_ms, half_life), Decimal(elapsed_ms) / MS_PER_HOUR)
        return w_inc

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
        self._seen[k] = _NO_TS if leg.ts_ms is None else leg.ts_ms if leg.seen_ms is None else leg.seen_ms
        self.level_f[k] = float(leg.level)
        self.rate_f[k] = np.nan if leg.rate is None else float(leg.rate)
        self._seen_f = None

    def level(self, k: int) -> Decimal:
        """Key ``k``'s exact level as of its latest observation (zero before any observation)."""
        leg = self._legs[k] if self._legs else None
        return ZERO if leg is None else leg.seen_level(self.forecaster.params.level_half_life_hours)

    def seen_level_f(self) -> np.ndarray:
        """Every key's level as of its latest observation, in floats (screening only; ``level`` is
        the exact one): ``level_f`` with each held stretch folded in."""
        if self._seen_f is None:
            held = (self._seen > self._ts) & (self._ts != _NO_TS) & ~np.isnan(self.rate_f)
            hours = np.where(held, (self._seen - self._ts) / (MS_PER_HOUR * float(self.forecaster.params.level_half_life_hours)), 0.0)
            step = np.where(held, np.nan_to_num(self.rate_f) - self.level_f, 0.0)
            self._seen_f = self.level_f + (1.0 - np.power(0.5, hours)) * step
        return self._seen_f


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
    sample_ms = forecaster.params.level_sample_ms
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
                        half_life, sample_ms)
        count += len(due)
    return count
