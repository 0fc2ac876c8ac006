"""The built-in simulated market: several simulated venues quoting the same symbols.

Model (floats inside, quantized to Decimal at the boundary: prices to tick, sizes to lot, rates
to the venue's decimals):

- one shared index price per symbol: a driftless log-normal random walk at the symbol's
  annual volatility;
- per venue and symbol, a mark = index x (1 + basis), the basis mean-reverting (half-life
  30 min) around the premium implied by the funding latent, with a venue-specific std;
- per venue and symbol, a funding process calibrated to real settlements
  (``paper.calibration``): a latent hourly rate, partly shared across the venues of one symbol,
  AR(1) with the venue's persistence; published exactly at the 0.01 %/8h baseline when the
  latent is within the pin band, else the latent; plus rare decaying spikes. The published rate
  is the predicted rate of the next settlement and settles at UTC-aligned interval boundaries;
- order books built on request around the venue's mark from the profile's spread, level
  spacing and USD depth, with deterministic jitter; cached until the next step;
- optionally (``spot_venues``) a spot market per listed venue, named ``"<venue>:spot"``: its price
  is the same index x (1 + spot basis), the spot basis mean-reverting around 0 (half-life 30 min,
  ``SPOT_BASIS_STD_BPS``) and drawn from a generator of its own, so enabling spot changes no perp
  price, rate or book; the basis between a venue's spot and perp is therefore the perp's
  funding-premium basis minus this small noise. A spot market quotes funding 0 (it pays none), has
  spot fees (``SPOT_FEES``, charged in the base coin on buys by the paper venues) and a lot ten times
  finer than the perp's.

Time moves only through ``advance_to``, in fixed steps on an absolute grid (multiples of
``step_seconds`` since the epoch, so every hour boundary is a step). Everything is a function
of the seed and the ``advance_to`` calls: the market's random numbers come from one numpy
generator (``PCG64(seed)``) drawn in a fixed order each step, every process of every key updated at
once as arrays (a step of 5,000 keys costs well under a millisecond); faults draw from a second generator,
so enabling them does not change the prices or rates; books use a hash, not a generator, so
asking for them never changes what comes next.

Every quote and book a consumer gets has passed ``adapters.validation``. With ``SimFaults``
the market also produces stale quotes, absurd raw quotes/books (NaN, 1.79e+9 rates, zero
prices, crossed books: visible through ``raw_quotes``/``raw_books``, rejected and counted
before ``quotes``/``books``), venue feed outages and funding-interval changes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np

from adapters.errors import AbsurdVenueData
from adapters.validation import (
    DEFAULT_MAX_ABS_RATE_PER_HOUR,
    validate_book,
    validate_quote,
)
from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    FundingQuote,
    FundingSettlement,
    Instrument,
    InstrumentKind,
    MarketSnapshot,
    OrderBook,
    exchange_of,
    is_spot,
    spot_market,
)
from bot.quote_table import QuoteTable
from paper.calibration import (
    MAX_SPIKE_Z,
    REAL_CROSS_VENUE,
    REAL_FUNDING_STATS,
    SPIKE_Z,
    FundingModel,
    fit_funding_model,
)
from paper.fitted_models import FITTED_MODELS
from paper.sim_venues import (
    DEFAULT_SYMBOL_COUNT,
    DEFAULT_VENUES,
    VENUE_PROFILES,
    SymbolTraits,
    VenueProfile,
    interval_for,
    symbol_traits,
    symbol_universe,
)

MS_PER_HOUR = 3_600_000
_SECONDS_PER_YEAR = 365.0 * 86_400.0
_BASIS_HALF_LIFE_SECONDS = 1_800.0
_PREMIUM_HOURS = 8.0  # the basis centres on the latent hourly rate x 8 (an 8h premium)
_HUGE_RATE = Decimal("1.79E+9")  # 1.79e+11 %, as a real venue once published
_MASK64 = (1 << 64) - 1
SPOT_BASIS_STD_BPS = 3.0  # std of a spot market's price around the index (mean-reverting)
SPOT_FEES = FeeSchedule(maker_bps=Decimal(10), taker_bps=Decimal(10))  # 0.1 %: Bybit/Binance spot base tier
_SPOT_LOT_DIVISOR = 10  # spot trades in finer quantities than the perp


@dataclass(frozen=True, slots=True)
class SimFaults:
    """Fault injection. Probabilities are per step (per venue and symbol, or per venue for
    outages; per settlement for interval changes). All zero by default."""

    stale_quote_prob: float = 0.0  # a quote freezes (same values and ts_ms) for stale_quote_seconds
    stale_quote_seconds: int = 300
    absurd_quote_prob: float = 0.0  # this step's raw quote is absurd (rejected by validation)
    absurd_book_prob: float = 0.0  # this step's raw book is absurd (rejected by validation)
    outage_prob: float = 0.0  # a venue's feed returns nothing for outage_seconds
    outage_seconds: int = 600
    interval_change_prob: float = 0.0  # at a settlement, a multi-interval venue switches the symbol's interval

    def __post_init__(self) -> None:
        for name in ("stale_quote_prob", "absurd_quote_prob", "absurd_book_prob", "outage_prob",
                     "interval_change_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        for name in ("stale_quote_seconds", "outage_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def enabled(self) -> bool:
        return any((self.stale_quote_prob, self.absurd_quote_prob, self.absurd_book_prob,
                    self.outage_prob, self.interval_change_prob))


@dataclass(frozen=True, slots=True)
class SimMarketConfig:
    """What to simulate. ``symbols``, when given, replaces the first-``symbol_count`` universe."""

    venues: tuple[str, ...] = DEFAULT_VENUES  # names from paper.sim_venues.VENUE_PROFILES
    symbol_count: int = DEFAULT_SYMBOL_COUNT  # BTC, ETH, SOL, ... then SIM001, SIM002, ...
    symbols: tuple[str, ...] = ()
    step_seconds: int = 60  # simulated time per step; must divide 3600
    max_abs_rate_per_hour: Decimal = DEFAULT_MAX_ABS_RATE_PER_HOUR  # validation cap
    faults: SimFaults = field(default_factory=SimFaults)
    spot_venues: tuple[str, ...] = ()  # venues (of ``venues``) that also run a spot market "<venue>:spot"

    def __post_init__(self) -> None:
        if not self.venues:
            raise ValueError("at least one simulated venue is needed")
        unknown = [v for v in self.venues if v not in VENUE_PROFILES]
        if unknown:
            raise ValueError(f"unknown simulated venues {unknown}; known: {sorted(VENUE_PROFILES)}")
        if len(set(self.venues)) != len(self.venues):
            raise ValueError(f"duplicate venues in {self.venues}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("duplicate symbols")
        stray = [v for v in self.spot_venues if v not in self.venues]
        if stray:
            raise ValueError(f"spot_venues {stray} are not among the simulated venues {list(self.venues)}")
        if len(set(self.spot_venues)) != len(self.spot_venues):
            raise ValueError(f"duplicate spot venues in {self.spot_venues}")
        if not self.symbols:
            symbol_universe(self.symbol_count)  # validates the count
        if self.step_seconds <= 0 or 3600 % self.step_seconds:
            raise ValueError(f"step_seconds must divide 3600, got {self.step_seconds}")


class SimulatedMarket:
    """Deterministic simulated venues implementing ``bot.core.ports.MarketSource``."""

    def __init__(self, config: SimMarketConfig, seed: int, start_ts_ms: int) -> None:
        self.config = config
        self._profiles: tuple[VenueProfile, ...] = tuple(VENUE_PROFILES[v] for v in config.venues)
        self._traits: tuple[SymbolTraits, ...] = (
            tuple(symbol_traits(s) for s in config.symbols) if config.symbols
            else symbol_universe(config.symbol_count)
        )
        self._venue_index = {p.name: i for i, p in enumerate(self._profiles)}
        self._symbol_index = {t.symbol: i for i, t in enumerate(self._traits)}
        self._rng = np.random.Generator(np.random.PCG64(seed & _MASK64))
        self._fault_rng = random.Random(f"sim-faults/{seed}")
        self._seed_key = seed & _MASK64
        self._now_ts_ms = start_ts_ms
        self._step_ms = config.step_seconds * 1000
        self._step_ts_ms = start_ts_ms  # instant of the state the floats describe
        self._faults = config.faults
        self._init_processes()
        self._init_spot(seed)
        self._init_faults()
        self._table_keys: list[tuple[str, str]] | None = None
        self._columns: list[tuple] | None = None  # set on a history twin (``history_rate_columns``)
        # ``settle_only``: the keys whose settlements are worth an object (None: every key)
        self._settle_keys: Callable[[], Collection[tuple[str, str]]] | None = None
        n_s = self._n_symbols
        self._key_rate_scale = np.repeat([p.rate_scale for p in self._venue_params], n_s)
        self._key_rate_quantum = np.repeat([float(p.rate_quantum) for p in self._venue_params], n_s)
        self._key_quantum_exp = [int(p.rate_quantum.as_tuple().exponent) for p in self._venue_params]
        self._key_tick_f = np.tile([float(t.tick_size) for t in self._traits], len(self._profiles))
        self._key_spread_mult = np.tile([float(t.spread_mult) for t in self._traits], len(self._profiles))
        self._key_spread_bps = np.repeat([float(p.spread_bps) for p in self._profiles], n_s)
        self._clear_caches()

    # ----------------------------------------------------------------- MarketSource
    def venues(self) -> list[str]:
        """Perp venues, then the spot markets ("<venue>:spot") of ``spot_venues``."""
        return [p.name for p in self._profiles] + list(self._spot_names)

    def symbols(self) -> list[str]:
        return [t.symbol for t in self._traits]

    @property
    def now_ts_ms(self) -> int:
        """The instant the market was last advanced to."""
        return self._now_ts_ms

    def fee_schedules(self) -> dict[str, FeeSchedule]:
        fees = {p.name: p.fees for p in self._profiles}
        fees.update({name: SPOT_FEES for name in self._spot_names})
        return fees

    def instruments(self) -> list[Instrument]:
        perps = [self._instrument(k) for k in range(len(self._instruments))]
        return perps + [self._spot_instrument(j) for j in range(len(self._spot_basis))]

    def instrument(self, venue: str, symbol: str) -> Instrument:
        """The instrument (its funding interval may change under ``interval_change_prob``)."""
        if is_spot(venue):
            return self._spot_instrument(self._spot_key(venue, symbol))
        return self._instrument(self._key(venue, symbol))

    def quote(self, venue: str, symbol: str) -> FundingQuote | None:
        """The validated current quote; None during an outage or when the raw quote was absurd."""
        if is_spot(venue):
            return self._spot_quote(self._spot_key(venue, symbol))
        return self._quote(self._key(venue, symbol))

    def quotes(self) -> list[FundingQuote]:
        """Every validated current quote (absurd raw quotes are rejected and counted); spot
        markets quote funding 0 at their mid."""
        perps = [q for k in range(self._n_keys) if (q := self._quote(k)) is not None]
        return perps + [q for j in range(len(self._spot_basis)) if (q := self._spot_quote(j)) is not None]

    def latest_quote_ts_by_venue(self) -> dict[str, int]:
        """Per venue, the time of its freshest valid quote (what its stale-data breaker needs),
        without building every quote: a live, valid quote of this step is the freshest possible,
        so the scan of a venue's keys stops at the first one (venues in an outage are absent)."""
        out: dict[str, int] = {}
        n_s, step_ts = self._n_symbols, self._step_ts_ms
        for v, profile in enumerate(self._profiles):
            best = -1
            for k in range(v * n_s, (v + 1) * n_s):
                quote = self._quote(k)
                if quote is None:
                    continue
                if quote.ts_ms >= step_ts:
                    best = quote.ts_ms
                    break
                best = max(best, quote.ts_ms)
            if best >= 0:
                out[profile.name] = best
        n_t = len(self._traits)
        for m, market in enumerate(self._spot_names):  # spot markets: their own quotes, same rule
            best = -1
            for j in range(m * n_t, (m + 1) * n_t):
                quote = self._spot_quote(j)
                if quote is not None:
                    best = max(best, quote.ts_ms)
                    if quote.ts_ms >= step_ts:
                        break
            if best >= 0:
                out[market] = best
        return out

    def raw_quotes(self) -> list[FundingQuote]:
        """What the feeds delivered this step, before validation (may hold absurd values)."""
        return [q for k in range(self._n_keys) if (q := self._raw_quote(k)) is not None]

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """The validated current book; None during an outage or when the raw book was absurd."""
        if is_spot(venue):
            return self._spot_book(self._spot_key(venue, symbol))
        return self._book(self._key(venue, symbol))

    def books(self) -> list[OrderBook]:
        perps = [b for k in range(self._n_keys) if (b := self._book(k)) is not None]
        return perps + [b for j in range(len(self._spot_basis)) if (b := self._spot_book(j)) is not None]

    def raw_books(self) -> list[OrderBook]:
        return [b for k in range(self._n_keys) if (b := self._raw_book(k)) is not None]

    @property
    def rejected_quote_count(self) -> int:
        """Raw quotes rejected by validation so far (each at most once per step)."""
        return self._rejected_quotes

    @property
    def rejected_book_count(self) -> int:
        return self._rejected_books

    def snapshot(self, *, with_books: bool = True) -> MarketSnapshot:
        """Everything at ``now_ts_ms`` as one immutable view."""
        return MarketSnapshot(
            now_ts_ms=self._now_ts_ms,
            quotes={(q.venue, q.symbol): q for q in self.quotes()},
            books={(b.venue, b.symbol): b for b in self.books()} if with_books else {},
            instruments={(i.venue, i.symbol): i for i in self.instruments()},
            fees=self.fee_schedules(),
        )

    # ----------------------------------------------------------------- time
    def history_settlements(self, hours: int) -> list[FundingSettlement]:
        """Synthetic settlements of the ``hours`` before now, from a twin of this market (same
        venues, symbols and seed, so the same persistent funding levels; hourly steps, no
        faults). It lets a fresh paper bot start with history, as a live bot loads the venues'."""
        if hours <= 0:
            return []
        start = (self._now_ts_ms - hours * MS_PER_HOUR) // MS_PER_HOUR * MS_PER_HOUR
        twin = SimulatedMarket(replace(self.config, step_seconds=3600, faults=SimFaults()),
                               self._seed_key, start)
        return [s for s in twin.advance_to(self._now_ts_ms) if s.ts_ms < self._now_ts_ms]

    def hourly_history(self, hours: int) -> Iterator[tuple[int, "SimulatedMarket"]]:
        """The twin of ``history_settlements`` at each whole hour of the ``hours`` before now, in
        time order: (hour ts_ms, the twin market at that instant). Read its quotes before the next step."""
        if hours <= 0:
            return
        start = (self._now_ts_ms - hours * MS_PER_HOUR) // MS_PER_HOUR * MS_PER_HOUR
        twin = SimulatedMarket(replace(self.config, step_seconds=3600, faults=SimFaults()), self._seed_key, start)
        ts = start + MS_PER_HOUR
        while ts < self._now_ts_ms:
            twin.advance_to(ts)
            yield ts, twin
            ts += MS_PER_HOUR

    def history_rate_columns(self, hours: int) -> tuple[list[tuple[str, str]], list[int], int, list[tuple]]:
        """``history_settlements(hours)`` as columns, for the forecast warm-up (``bot.forecast_columns``):
        (keys, rate quantum exponent per venue, symbols per venue, [(ts_ms, due keys, rate units,
        interval hours), ...] in time order). A settlement's rate is ``units x 10 ** exponent``."""
        keys = [(p.name, t.symbol) for p in self._profiles for t in self._traits]
        if hours <= 0:
            return keys, self._key_quantum_exp, self._n_symbols, []
        start = (self._now_ts_ms - hours * MS_PER_HOUR) // MS_PER_HOUR * MS_PER_HOUR
        twin = SimulatedMarket(replace(self.config, step_seconds=3600, faults=SimFaults()), self._seed_key, start)
        twin._columns = []
        twin.advance_to(self._now_ts_ms)
        return keys, self._key_quantum_exp, self._n_symbols, [c for c in twin._columns if c[0] < self._now_ts_ms]

    def settle_only(self, keys: Callable[[], Collection[tuple[str, str]]] | None) -> None:
        """From now on ``advance_to`` returns only the settlements of the (venue, symbol) keys in
        ``keys()`` (asked at each settlement instant); None: every key's (the default).

        The paper venues pay funding only on a position they hold, so the paper wiring restricts
        the settlements to the keys they ever held (``PaperExecutor.settlement_keys``): at 5,000
        keys an 8-hour boundary otherwise builds 5,000 settlements that all pay nothing. What
        the market does (rates, intervals, random draws) is the same either way."""
        self._settle_keys = keys

    def advance_to(self, ts_ms: int) -> list[FundingSettlement]:
        """Step the market to ``ts_ms`` and return the settlements crossed, in time order
        (only of the keys ``settle_only`` names, when set).

        Steps land on multiples of ``step_seconds``; a settlement at instant T is returned by
        the call that moves ``now_ts_ms`` from before T to T or later. Moving backwards raises.
        """
        if ts_ms < self._now_ts_ms:
            raise ValueError(f"cannot move back in time: {ts_ms} < {self._now_ts_ms}")
        settlements: list[FundingSettlement] = []
        step_ms = self._step_ms
        next_ts = (self._step_ts_ms // step_ms + 1) * step_ms
        while next_ts <= ts_ms:
            self._step(next_ts)
            if next_ts % MS_PER_HOUR == 0:
                self._settle(next_ts, settlements)
            next_ts += step_ms
        self._now_ts_ms = ts_ms
        return settlements

    # ----------------------------------------------------------------- set-up
    def _init_processes(self) -> None:
        rng = self._rng
        n_s, n_v = len(self._traits), len(self._profiles)
        self._n_symbols, self._n_keys = n_s, n_s * n_v
        dt_hours = self.config.step_seconds / 3600.0
        models = {p.calibration: _model(p.calibration) for p in self._profiles}
        rho = min(max(float(REAL_CROSS_VENUE.core_correlation), 0.0), 0.95)
        self._load_common, self._load_idio = math.sqrt(rho), math.sqrt(1.0 - rho)
        common_phi_hour = min(m.ar1_per_hour for m in models.values())
        self._phi_common = common_phi_hour**dt_hours
        self._q_common = math.sqrt(1.0 - self._phi_common**2)
        # spikes: each venue's own, plus symbol-wide events that hit every venue at once; the
        # latter make up the calibrated co-occurrence share of the rarest venue's spikes
        venue_models = [models[p.calibration] for p in self._profiles]
        share = min(max(float(REAL_CROSS_VENUE.spike_co_occurrence), 0.0), 1.0) if n_v > 1 else 0.0
        self._common_spike_rate_per_step = share * min(m.spike_start_prob_per_hour for m in venue_models) * dt_hours
        own_spike_rates = [m.spike_start_prob_per_hour - self._common_spike_rate_per_step / dt_hours for m in venue_models]

        self._price = np.array([t.base_price for t in self._traits], dtype=np.float64)
        self._vol_step = np.array([t.annual_vol * math.sqrt(self.config.step_seconds / _SECONDS_PER_YEAR)
                                   for t in self._traits], dtype=np.float64)
        self._z_common = rng.standard_normal(n_s)
        symbol_offset = rng.standard_normal(n_s)

        basis_phi = 0.5 ** (self.config.step_seconds / _BASIS_HALF_LIFE_SECONDS)
        self._basis_phi = basis_phi
        self._venue_params: list[_VenueParams] = []
        mu, z_idio, basis, interval, phi_idio = [], [], [], [], []
        per_key: dict[str, list[float]] = {"basis_q": [], "within": [], "pin": [], "band": [], "stop": [],
                                           "decay": []}
        for profile, own_spike_rate in zip(self._profiles, own_spike_rates):
            model = models[profile.calibration]
            settlement_ar1 = model.ar1_per_hour**model.cadence_hours
            basis_std = profile.basis_std_bps * 1e-4
            params = _VenueParams(
                model=model,
                basis_phi=basis_phi,
                basis_q=basis_std * math.sqrt(1.0 - basis_phi**2),
                spike_rate_per_step=own_spike_rate * dt_hours,
                spike_decay=0.5 ** (dt_hours / model.spike_half_life_hours),
                spike_stop=SPIKE_Z * model.spike_unit_hourly,  # the calibration times spikes down to 4 std
                rate_quantum=Decimal(1).scaleb(-profile.rate_decimals),
                rate_scale=10.0**profile.rate_decimals,
            )
            self._venue_params.append(params)
            own = rng.standard_normal(n_s)
            idio = rng.standard_normal(n_s)
            start_basis = rng.standard_normal(n_s) * basis_std
            for s, traits in enumerate(self._traits):
                offset = self._load_common * symbol_offset[s] + self._load_idio * own[s]
                mu.append(model.mean_hourly + model.between_std_hourly * offset)
                z_idio.append(idio[s])
                basis.append(start_basis[s])
                hours = interval_for(profile, traits.symbol)
                interval.append(hours)
                # the latent's AR(1) at this symbol's own cadence is the calibrated one; the
                # shared factor's part is fixed, so the venue-specific factor makes up the rest
                common_part = rho * common_phi_hour**hours
                idio_settlement = min(max((settlement_ar1 - common_part) / (1.0 - rho), 0.01), 0.999)
                phi_idio.append(idio_settlement ** (dt_hours / hours))
            for name, value in (("basis_q", params.basis_q), ("within", model.within_std_hourly),
                                ("pin", model.pin_hourly), ("band", model.band_hourly),
                                ("stop", params.spike_stop), ("decay", params.spike_decay)):
                per_key[name].extend([value] * n_s)
        self._mu = np.array(mu, dtype=np.float64)
        self._z_idio = np.array(z_idio, dtype=np.float64)
        self._basis = np.array(basis, dtype=np.float64)
        self._interval = np.array(interval, dtype=np.int64)
        self._instruments: list[Instrument | None] = [None] * self._n_keys
        self._phi_idio = np.array(phi_idio, dtype=np.float64)
        self._q_idio = np.sqrt(1.0 - self._phi_idio * self._phi_idio)
        self._key_basis_q = np.array(per_key["basis_q"])
        self._key_within = np.array(per_key["within"])
        self._key_pin = np.array(per_key["pin"])
        self._key_band = np.array(per_key["band"])
        self._key_stop = np.array(per_key["stop"])
        self._key_symbol = np.tile(np.arange(n_s), n_v)  # symbol index of each key
        self._rate = np.zeros(self._n_keys)  # published hourly rate (before quantization)
        self._latent = np.zeros(self._n_keys)
        self._spike_value = np.zeros(self._n_keys)  # decaying; 0.0 when no spike
        self._spike_decay = np.ones(self._n_keys)  # per step, of the current spike
        self._common_spike_decay = max(p.spike_decay for p in self._venue_params)
        self._step_no = self._step_ts_ms // self._step_ms
        self._spike_next = np.array(
            [self._next_step(self._venue_params[k // n_s].spike_rate_per_step, self._step_no) for k in range(self._n_keys)],
            dtype=np.int64)  # step number of each key's next own spike
        self._common_spike_next = np.array(
            [self._next_step(self._common_spike_rate_per_step, self._step_no) for _ in range(n_s)], dtype=np.int64)
        self._update_rates(self._step_no)

    def _init_spot(self, seed: int) -> None:
        """Spot markets of ``spot_venues``: one basis per (spot market, symbol), own generator."""
        self._spot_names = tuple(spot_market(v) for v in self.config.spot_venues)
        self._spot_index = {name: i for i, name in enumerate(self._spot_names)}
        self._spot_rng = random.Random(f"sim-spot/{seed}")
        phi = 0.5 ** (self.config.step_seconds / _BASIS_HALF_LIFE_SECONDS)
        std = SPOT_BASIS_STD_BPS * 1e-4
        self._spot_phi, self._spot_q = phi, std * math.sqrt(1.0 - phi * phi)
        n = len(self._spot_names) * len(self._traits)
        self._spot_basis = [self._spot_rng.gauss(0.0, std) for _ in range(n)]
        self._spot_instruments: list[Instrument | None] = [None] * n

    def _spot_key(self, market: str, symbol: str) -> int:
        try:
            return self._spot_index[market] * len(self._traits) + self._symbol_index[symbol]
        except KeyError:
            raise KeyError(f"unknown simulated instrument {market}/{symbol}") from None

    def _spot_instrument(self, j: int) -> Instrument:
        cached = self._spot_instruments[j]
        if cached is None:
            m, s = divmod(j, len(self._traits))
            traits = self._traits[s]
            profile = self._profiles[self._venue_index[exchange_of(self._spot_names[m])]]
            lot = traits.lot_size_base / _SPOT_LOT_DIVISOR
            cached = self._spot_instruments[j] = Instrument(
                venue=self._spot_names[m], symbol=traits.symbol, venue_symbol=f"{traits.symbol}USDT",
                tick_size=traits.tick_size, lot_size_base=lot, min_size_base=lot,
                funding_interval_hours=_hours_decimal(1), min_notional_usd=profile.min_notional_usd,
                kind=InstrumentKind.SPOT,
            )
        return cached

    def _spot_in_outage(self, j: int) -> bool:
        venue = exchange_of(self._spot_names[j // len(self._traits)])
        return self._outage_until[self._venue_index[venue]] > self._step_ts_ms

    def _spot_price_float(self, j: int) -> float:
        return self._price[j % len(self._traits)] * (1.0 + self._spot_basis[j])

    def _spot_quote(self, j: int) -> FundingQuote | None:
        """Funding 0 (spot pays none) at the spot price; None during the exchange's outage."""
        if self._spot_in_outage(j):
            return None
        tick = self._traits[j % len(self._traits)].tick_size
        price = Decimal(max(1, round(self._spot_price_float(j) / float(tick)))) * tick
        return FundingQuote(
            venue=self._spot_names[j // len(self._traits)], symbol=self._traits[j % len(self._traits)].symbol,
            rate_per_interval=Decimal(0), interval_hours=_hours_decimal(1),
            next_funding_ts_ms=(self._step_ts_ms // MS_PER_HOUR + 1) * MS_PER_HOUR,
            mark_price=price, ts_ms=self._step_ts_ms,
        )

    def _spot_book(self, j: int) -> OrderBook | None:
        """A book around the spot price shaped like the exchange's perp book (its profile), in
        spot lots; None during the exchange's outage."""
        cached = self._spot_book_cache.get(j)
        if cached is not None or j in self._spot_book_cache:
            return cached
        book = None
        if not self._spot_in_outage(j):
            m, s = divmod(j, len(self._traits))
            market = self._spot_names[m]
            perp_k = self._venue_index[exchange_of(market)] * self._n_symbols + s
            # Sizes are whole perp lots, hence whole spot lots (ten times finer).
            book = dataclasses.replace(self._build_book(perp_k, mark=self._spot_price_float(j), salt=0x5F0),
                                       venue=market)
            try:
                validate_book(book)
            except AbsurdVenueData:
                self._rejected_books += 1
                book = None
        self._spot_book_cache[j] = book
        return book

    def _init_faults(self) -> None:
        self._outage_until = [0] * len(self._profiles)
        self._stale_until = [0] * self._n_keys
        self._frozen: dict[int, FundingQuote] = {}
        self._absurd_quote: dict[int, int] = {}
        self._absurd_book: dict[int, int] = {}
        self._rejected_quotes = 0
        self._rejected_books = 0

    # ----------------------------------------------------------------- stepping
    def _step(self, ts_ms: int) -> None:
        """One step of every process at once (numpy arrays: the cost barely grows with the keys)."""
        if self._faults.enabled:
            self._draw_faults(ts_ms)
        n_s, n_k = self._n_symbols, self._n_keys
        normals = self._rng.standard_normal(2 * n_s + 2 * n_k)
        vol = self._vol_step
        self._price *= np.exp(vol * normals[:n_s] - 0.5 * vol * vol)
        self._z_common = self._phi_common * self._z_common + self._q_common * normals[n_s:2 * n_s]
        self._z_idio = self._phi_idio * self._z_idio + self._q_idio * normals[2 * n_s:2 * n_s + n_k]
        target = self._latent * _PREMIUM_HOURS
        self._basis = target + self._basis_phi * (self._basis - target) + self._key_basis_q * normals[2 * n_s + n_k:]
        if self._spot_basis:
            spot_gauss, phi, q = self._spot_rng.gauss, self._spot_phi, self._spot_q
            self._spot_basis = [phi * b + q * spot_gauss(0.0, 1.0) for b in self._spot_basis]
        self._step_no = ts_ms // self._step_ms
        self._step_ts_ms = ts_ms
        self._update_rates(self._step_no)
        self._clear_caches()

    def _update_rates(self, step_no: int) -> None:
        """Latent and published hourly rates from the current factors; starts/ends spikes."""
        for s in np.flatnonzero(self._common_spike_next <= step_no).tolist():
            self._start_common_spike(s, step_no)
        y = self._mu + self._key_within * (self._load_common * self._z_common[self._key_symbol]
                                           + self._load_idio * self._z_idio)
        self._latent = y
        pin = self._key_pin
        x = np.where(np.abs(y - pin) < self._key_band, pin, y)
        for k in np.flatnonzero(self._spike_next <= step_no).tolist():
            self._start_spike(k, self._venue_params[k // self._n_symbols], step_no)
        spike = self._spike_value
        x += spike
        spike *= self._spike_decay
        spike[np.abs(spike) < self._key_stop] = 0.0
        self._rate = x

    def _start_spike(self, k: int, params: _VenueParams, step_no: int) -> None:
        """A spike on key ``k`` alone."""
        rng, model = self._rng, params.model
        sign = 1.0 if rng.random() < model.spike_up_prob else -1.0
        self._spike_value[k] = sign * _spike_z(model, float(rng.standard_normal())) * model.spike_unit_hourly
        self._spike_decay[k] = params.spike_decay
        self._spike_next[k] = self._next_step(params.spike_rate_per_step, step_no)

    def _start_common_spike(self, s: int, step_no: int) -> None:
        """A spike on every venue of symbol ``s``: same sign and size quantile, each venue's own
        size distribution, all decaying as slowly as the slowest venue's spikes (the big
        market-wide dislocations are the lasting ones)."""
        rng = self._rng
        models = [p.model for p in self._venue_params]
        up_prob = sum(m.spike_up_prob for m in models) / len(models)
        sign = 1.0 if rng.random() < up_prob else -1.0
        quantile = float(rng.standard_normal())
        for v, model in enumerate(models):
            k = v * self._n_symbols + s
            self._spike_value[k] = sign * _spike_z(model, quantile) * model.spike_unit_hourly
            self._spike_decay[k] = self._common_spike_decay
        self._common_spike_next[s] = self._next_step(self._common_spike_rate_per_step, step_no)

    def _next_step(self, rate_per_step: float, after_step: int) -> int:
        """Step number of the next event of a Poisson process with ``rate_per_step``."""
        if rate_per_step <= 0:
            return 1 << 62
        return after_step + 1 + int(self._rng.exponential(1.0 / rate_per_step))

    def _settle(self, ts_ms: int, out: list[FundingSettlement]) -> None:
        n_s = self._n_symbols
        change = self._faults.interval_change_prob
        due_arr = np.flatnonzero(ts_ms % (self._interval * MS_PER_HOUR) == 0)
        if not len(due_arr):
            return
        # Every due key's rate units and mark ticks at once: the operations of ``_rate_decimal`` and
        # ``_mark_decimal`` in the same order (numpy rint rounds half to even, as ``round``).
        hours_arr = self._interval[due_arr]
        units = np.rint(self._rate[due_arr] * hours_arr * self._key_rate_scale[due_arr]).astype(np.int64)
        if self._columns is not None and not change:  # a history twin: columns, not objects
            self._columns.append((ts_ms, due_arr, units, hours_arr.copy()))
            return
        wanted: set[int] | None = None
        if self._settle_keys is not None:
            wanted = {self._key(venue, symbol) for venue, symbol in self._settle_keys()
                      if venue in self._venue_index and symbol in self._symbol_index}
            if not change:  # (with interval changes every due key draws below, in order)
                keep = np.isin(due_arr, np.fromiter(wanted, dtype=np.int64, count=len(wanted)))
                due_arr, hours_arr, units = due_arr[keep], hours_arr[keep], units[keep]
        mark = self._price[self._key_symbol[due_arr]] * (1.0 + self._basis[due_arr])
        ticks = np.maximum(1, np.rint(mark / self._key_tick_f[due_arr]).astype(np.int64))
        profiles, traits, params = self._profiles, self._traits, self._venue_params
        for k, hours, unit, tick_count in zip(due_arr.tolist(), hours_arr.tolist(), units.tolist(), ticks.tolist()):
            v, s = divmod(k, n_s)
            if wanted is not None and k not in wanted:
                self._maybe_change_interval(k, v, hours)  # (only reached with interval changes on)
                continue
            symbol_traits = traits[s]
            out.append(FundingSettlement(
                venue=profiles[v].name,
                symbol=symbol_traits.symbol,
                ts_ms=ts_ms,
                rate=Decimal(unit) * params[v].rate_quantum,
                interval_hours=_hours_decimal(hours),
                mark_price=Decimal(tick_count) * symbol_traits.tick_size,
            ))
            self._maybe_change_interval(k, v, hours)

    def _maybe_change_interval(self, k: int, v: int, hours: int) -> None:
        """The interval-change fault at a settlement of key ``k`` (one draw per due key, in order)."""
        change = self._faults.interval_change_prob
        if change:
            choices = self._profiles[v].interval_choices
            if len(choices) > 1 and self._fault_rng.random() < change:
                self._interval[k] = self._fault_rng.choice([h for h in choices if h != hours])
                self._lists = None
                self._table = None
                self._generation += 1
                self._instruments[k] = None
                self._quote_cache.pop(k, None)
                self._raw_quote_cache.pop(k, None)

    # ----------------------------------------------------------------- faults
    def _draw_faults(self, ts_ms: int) -> None:
        faults, rng = self._faults, self._fault_rng
        if faults.outage_prob:
            for v in range(len(self._profiles)):
                if self._outage_until[v] <= ts_ms and rng.random() < faults.outage_prob:
                    self._outage_until[v] = ts_ms + faults.outage_seconds * 1000
        if faults.stale_quote_prob:
            for k in [k for k in self._frozen if self._stale_until[k] <= ts_ms]:
                del self._frozen[k]
            for k in range(self._n_keys):
                if self._stale_until[k] <= ts_ms and rng.random() < faults.stale_quote_prob:
                    self._frozen[k] = self._build_quote(k)  # the state before this step
                    self._stale_until[k] = ts_ms + faults.stale_quote_seconds * 1000
        self._absurd_quote = {}
        if faults.absurd_quote_prob:
            for k in range(self._n_keys):
                if rng.random() < faults.absurd_quote_prob:
                    self._absurd_quote[k] = rng.randrange(len(_ABSURD_QUOTES))
        self._absurd_book = {}
        if faults.absurd_book_prob:
            for k in range(self._n_keys):
                if rng.random() < faults.absurd_book_prob:
                    self._absurd_book[k] = rng.randrange(len(_ABSURD_BOOKS))

    # ----------------------------------------------------------------- building outputs
    def _key(self, venue: str, symbol: str) -> int:
        try:
            return self._venue_index[venue] * self._n_symbols + self._symbol_index[symbol]
        except KeyError:
            raise KeyError(f"unknown simulated instrument {venue}/{symbol}") from None

    def _clear_caches(self) -> None:
        self._generation = getattr(self, "_generation", 0) + 1  # new quote objects from here on
        self._table: QuoteTable | None = None
        self._lists: tuple[list[float], list[float], list[float], list[int]] | None = None
        self._quote_cache: dict[int, FundingQuote | None] = {}
        self._raw_quote_cache: dict[int, FundingQuote | None] = {}
        self._book_cache: dict[int, OrderBook | None] = {}
        self._raw_book_cache: dict[int, OrderBook | None] = {}
        self._spot_book_cache: dict[int, OrderBook | None] = {}

    def _in_outage(self, k: int) -> bool:
        return self._outage_until[k // self._n_symbols] > self._step_ts_ms

    def _instrument(self, k: int) -> Instrument:
        cached = self._instruments[k]
        if cached is None:
            v, s = divmod(k, self._n_symbols)
            profile, traits = self._profiles[v], self._traits[s]
            cached = self._instruments[k] = Instrument(
                venue=profile.name,
                symbol=traits.symbol,
                venue_symbol=profile.venue_symbol_format.format(symbol=traits.symbol),
                tick_size=traits.tick_size,
                lot_size_base=traits.lot_size_base,
                min_size_base=traits.lot_size_base,
                funding_interval_hours=_hours_decimal(self._floats()[3][k]),
                min_notional_usd=profile.min_notional_usd,
            )
        return cached

    def _touch_spread_lower_bound(self, lists: tuple) -> np.ndarray:
        """Per key, a lower bound of ``(best ask - best bid) / mid`` of the book ``_build_book``
        makes at this step: its touch in ticks computed as there (numpy, same operations), then
        narrowed by a tick on each side so a float difference can only understate it."""
        price, basis = np.asarray(lists[1]), np.asarray(lists[2])
        mark = price[self._key_symbol] * (1.0 + basis)
        tick_f = self._key_tick_f
        mid_ticks = mark / tick_f
        half_ticks = np.maximum(0.5, mark * self._key_spread_bps * self._key_spread_mult * 0.5e-4 / tick_f)
        with np.errstate(invalid="ignore"):
            best_bid = np.maximum(1.0, np.floor(mid_ticks - half_ticks))
            best_ask = np.maximum(best_bid + 1.0, np.ceil(mid_ticks + half_ticks))
        spread = np.maximum(best_ask - best_bid - 2.0, 0.0)
        out = spread / ((best_ask + best_bid + 2.0) / 2.0)
        return np.where(np.isfinite(out), out, 0.0)

    def _rate_decimal(self, k: int, lists: tuple | None = None) -> Decimal:
        params = self._venue_params[k // self._n_symbols]
        rate, _, _, interval = lists or self._floats()
        units = round(rate[k] * interval[k] * params.rate_scale)
        return Decimal(units) * params.rate_quantum

    def _floats(self) -> tuple[list[float], list[float], list[float], list[int]]:
        """This step's (hourly rate, price, basis, interval hours) as Python lists, made on first
        need: per-key reads stay plain float arithmetic, and a step nobody reads costs nothing."""
        lists = self._lists
        if lists is None:
            lists = self._lists = (self._rate.tolist(), self._price.tolist(), self._basis.tolist(),
                                   self._interval.tolist())
        return lists

    def _mark_float(self, k: int, lists: tuple | None = None) -> float:
        _, price, basis, _ = lists or self._floats()
        return price[k % self._n_symbols] * (1.0 + basis[k])

    def _mark_decimal(self, k: int, lists: tuple | None = None) -> Decimal:
        tick = self._traits[k % self._n_symbols].tick_size
        return Decimal(max(1, round(self._mark_float(k, lists) / float(tick)))) * tick

    def _build_quote(self, k: int, lists: tuple | None = None, step_ts_ms: int | None = None) -> FundingQuote:
        """Key ``k``'s regular quote at this step (or from ``lists``/``step_ts_ms`` captured at an
        earlier one: ``QuoteTable`` builds its few exact quotes after the market moved on)."""
        lists = lists or self._floats()
        step_ts = self._step_ts_ms if step_ts_ms is None else step_ts_ms
        v, s = divmod(k, self._n_symbols)
        hours = lists[3][k]
        interval_ms = hours * MS_PER_HOUR
        return FundingQuote(
            venue=self._profiles[v].name,
            symbol=self._traits[s].symbol,
            rate_per_interval=self._rate_decimal(k, lists),
            interval_hours=_hours_decimal(hours),
            next_funding_ts_ms=(step_ts // interval_ms + 1) * interval_ms,
            mark_price=self._mark_decimal(k, lists),
            ts_ms=step_ts,
        )

    def quote_generation(self) -> int:
        """Changes whenever new quote objects (and books) are issued (``QuoteTable.generation``)."""
        return self._generation

    def quote_table(self) -> QuoteTable | None:
        """This step's perp quotes as arrays (``bot.quote_table``), for a strategy pass that screens
        every key at once and builds exact quotes for a few; None with spot markets (not tabled).

        A key is *regular* when its validated quote is this step's ordinary build (no outage,
        frozen or absurd quote, and its rate safely inside the validation cap); its rate, interval
        and hourly rate are then in the arrays and ``QuoteTable.quote`` builds the very quote
        ``quote()`` returns now. Other present keys carry their exact validated quote (or None).
        """
        if self._spot_names:
            return None
        cached = self._table
        if cached is not None:
            return cached
        lists = self._floats()
        n_s = self._n_symbols
        rate = self._rate  # the array ``lists[0]`` was made from
        hours = self._interval.copy()
        units = np.rint(rate * hours * self._key_rate_scale).astype(np.int64)
        hourly = units * self._key_rate_quantum / hours
        step_ts = self._step_ts_ms
        present = np.ones(self._n_keys, dtype=bool)
        for v in range(len(self._profiles)):
            if self._outage_until[v] > step_ts:
                present[v * n_s:(v + 1) * n_s] = False
        cap = float(self.config.max_abs_rate_per_hour) * (1.0 - 1e-9)
        regular = present & (np.abs(hourly) <= cap)
        special = set(self._frozen) | set(self._absurd_quote)
        if special:
            regular[list(special)] = False
        exact: dict[int, FundingQuote | None] = {}
        for k in np.flatnonzero(present & ~regular).tolist():
            quote = exact[k] = self._quote(k)
            hourly[k] = math.nan if quote is None or quote.hourly_rate_or_none is None else float(quote.hourly_rate_or_none)
        if self._table_keys is None:
            self._table_keys = [(p.name, t.symbol) for p in self._profiles for t in self._traits]
        spread_lb = self._touch_spread_lower_bound(lists)
        spread_lb[~present] = 0.0
        if self._absurd_book:
            spread_lb[list(self._absurd_book)] = 0.0
        table = self._table = QuoteTable(
            keys=self._table_keys, n_venues=len(self._profiles), n_symbols=n_s, generation=self._generation,
            ts_ms=step_ts, present=present, regular=regular, units=units, hours=hours, hourly=hourly,
            quantum_exp=self._key_quantum_exp, exact=exact, spread_lb=spread_lb,
            build=functools.partial(self._build_quote, lists=lists, step_ts_ms=step_ts))
        return table

    def _raw_quote(self, k: int) -> FundingQuote | None:
        if k in self._raw_quote_cache:
            return self._raw_quote_cache[k]
        quote: FundingQuote | None
        if self._in_outage(k):
            quote = None
        elif k in self._frozen:
            quote = self._frozen[k]
        else:
            quote = self._build_quote(k)
            kind = self._absurd_quote.get(k)
            if kind is not None:
                quote = dataclasses.replace(quote, **_ABSURD_QUOTES[kind])
        self._raw_quote_cache[k] = quote
        return quote

    def _quote(self, k: int) -> FundingQuote | None:
        if k in self._quote_cache:
            return self._quote_cache[k]
        quote = self._raw_quote(k)
        if quote is not None:
            try:
                validate_quote(quote, max_abs_rate_per_hour=self.config.max_abs_rate_per_hour)
            except AbsurdVenueData:
                self._rejected_quotes += 1
                quote = None
        self._quote_cache[k] = quote
        return quote

    def _raw_book(self, k: int) -> OrderBook | None:
        if k in self._raw_book_cache:
            return self._raw_book_cache[k]
        book = None if self._in_outage(k) else self._build_book(k)
        kind = self._absurd_book.get(k)
        if book is not None and kind is not None:
            book = _absurd_book(book, kind)
        self._raw_book_cache[k] = book
        return book

    def _book(self, k: int) -> OrderBook | None:
        if k in self._book_cache:
            return self._book_cache[k]
        book = self._raw_book(k)
        # A book as ``_build_book`` makes it is sane by construction (positive prices a whole tick
        # apart, bids below asks, at least one lot per level): only an absurd-fault book is checked.
        if book is not None and k in self._absurd_book:
            try:
                validate_book(book)
            except AbsurdVenueData:
                self._rejected_books += 1
                book = None
        self._book_cache[k] = book
        return book

    def _build_book(self, k: int, *, mark: float | None = None, salt: int = 0) -> OrderBook:
        """Book of perp key ``k`` around its mark (or around ``mark``: a spot book, ``salt`` varying
        its jitter)."""
        v, s = divmod(k, self._n_symbols)
        profile, traits = self._profiles[v], self._traits[s]
        tick, lot = traits.tick_size, traits.lot_size_base
        tick_f, lot_f = float(tick), float(lot)
        mark = self._mark_float(k) if mark is None else mark
        mid_ticks = mark / tick_f
        half_ticks = max(0.5, mark * profile.spread_bps * traits.spread_mult * 0.5e-4 / tick_f)
        best_bid = max(1, math.floor(mid_ticks - half_ticks))
        best_ask = max(best_bid + 1, math.ceil(mid_ticks + half_ticks))
        spacing = max(1, round(mark * profile.level_spacing_bps * 1e-4 / tick_f))
        depth_usd = traits.depth_usd_per_level * profile.depth_scale
        key = ((self._seed_key * 0x9E3779B97F4A7C15) ^ (self._step_no * 0xC2B2AE3D27D4EB4F) ^ (k + 1) ^ salt) & _MASK64
        bids, asks = [], []
        for i in range(profile.book_levels):
            growth = depth_usd * (1.0 + 0.15 * i)
            bid_ticks = best_bid - i * spacing
            if bid_ticks > 0:
                lots = max(1, int(growth * _jitter(key, 2 * i) / (bid_ticks * tick_f) / lot_f))
                bids.append(BookLevel(Decimal(bid_ticks) * tick, Decimal(lots) * lot))
            ask_ticks = best_ask + i * spacing
            lots = max(1, int(growth * _jitter(key, 2 * i + 1) / (ask_ticks * tick_f) / lot_f))
            asks.append(BookLevel(Decimal(ask_ticks) * tick, Decimal(lots) * lot))
        return OrderBook(
            venue=profile.name, symbol=traits.symbol, bids=tuple(bids), asks=tuple(asks), ts_ms=self._step_ts_ms
        )


@dataclass(frozen=True, slots=True)
class _VenueParams:
    model: FundingModel
    basis_phi: float
    basis_q: float
    spike_rate_per_step: float  # own spike starts per step on one symbol
    spike_decay: float  # spike size factor per step
    spike_stop: float  # a spike smaller than this (hourly rate) is over
    rate_quantum: Decimal
    rate_scale: float


_MODELS: dict[str, FundingModel] = {}


def _model(calibration: str) -> FundingModel:
    """The fitted model of a calibration: precomputed (``paper.fitted_models``, generated by
    ``bench/calibrate.py --write-models``) while its stats equal the constants, else fitted once."""
    model = _MODELS.get(calibration)
    if model is None:
        stats = REAL_FUNDING_STATS[calibration]
        fitted = FITTED_MODELS.get(calibration)
        model = fitted[1] if fitted is not None and fitted[0] == stats else fit_funding_model(stats)
        _MODELS[calibration] = model
    return model


def _spike_z(model: FundingModel, normal: float) -> float:
    """Starting spike size in std units for a standard normal draw."""
    return min(SPIKE_Z + math.exp(model.spike_log_excess_mean + model.spike_log_excess_std * normal), MAX_SPIKE_Z)


_HOURS: dict[int, Decimal] = {}


def _hours_decimal(hours: int) -> Decimal:
    value = _HOURS.get(hours)
    if value is None:
        value = _HOURS[hours] = Decimal(hours)
    return value


def _jitter(key: int, i: int) -> float:
    """Deterministic factor in [0.6, 1.4) from (key, i): splitmix64 finaliser."""
    x = (key + (i + 1) * 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    return 0.6 + 0.8 * (x >> 40) / float(1 << 24)


_ABSURD_QUOTES = (
    {"rate_per_interval": Decimal("NaN")},
    {"rate_per_interval": _HUGE_RATE},
    {"rate_per_interval": Decimal("Infinity")},
    {"mark_price": Decimal(0)},
    {"mark_price": Decimal(-1)},
    {"interval_hours": Decimal(0)},
)
_ABSURD_BOOKS = ("crossed", "zero_size", "nan_price")


def _absurd_book(book: OrderBook, kind: int) -> OrderBook:
    """A broken copy of a (two-sided) simulated book."""
    bid, ask = book.bids[0], book.asks[0]
    name = _ABSURD_BOOKS[kind]
    if name == "crossed":
        return dataclasses.replace(book, bids=(BookLevel(ask.price + (ask.price - bid.price), bid.size_base), *book.bids[1:]))
    if name == "zero_size":
        return dataclasses.replace(book, asks=(BookLevel(ask.price, Decimal(0)), *book.asks[1:]))
    return dataclasses.replace(book, bids=(BookLevel(Decimal("NaN"), bid.size_base), *book.bids[1:]))
