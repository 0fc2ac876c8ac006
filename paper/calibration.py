"""Calibration of the simulated funding processes to real settlements.

Three parts, one job (turn real data into simulation parameters):

- ``funding_stats`` / ``cross_venue_stats`` / ``stats_from_history``: the statistics, on
  the hourly-normalised rate (rate_per_interval / interval_hours), of a set of settlement series.
  Used both on real data (``bench/calibrate.py``) and on simulated settlements (tests).
- ``REAL_FUNDING_STATS`` / ``REAL_CROSS_VENUE``: those statistics measured once on
  ../shared/data/funding (see below), stored as Decimal constants.
- ``fit_funding_model``: the simulation parameters that reproduce a ``FundingStats``.

Definitions (per venue, pooled over all of its series; x = hourly-normalised rate):
mean/std: over all settlements; ar1: lag-1 autocorrelation at the settlement cadence, each
series demeaned by its own mean; spike_freq: share of settlements with |x - mean| > 4 std;
sign_flip_freq: share of consecutive settlement pairs with opposite signs; pin_freq: share of
settlements exactly at the 0.01 %/8h interest baseline (Binance, Bybit and Hyperliquid all
settle exactly there when the premium is inside the +-0.05 % clamp); core_*: the same over
settlements that are neither pinned nor spikes; symbol_mean_std: spread of per-series means.

The model behind ``FundingModel`` (floats: model internals, quantized to Decimal by the
simulated market): a latent hourly rate y = mean + per-symbol offset + AR(1) noise, shared in
part across venues of one symbol; the published rate is exactly the baseline when
|y - baseline| < band, else y; plus rare spikes of several std that decay exponentially (big
ones stay spikes longer, as in the data), sometimes on several venues of a symbol at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from statistics import NormalDist, correlation, mean, pstdev

from bot.core.history import FundingHistory

PIN_RATE_PER_HOUR = Decimal("0.0000125")  # 0.01 % per 8h: the interest component
SPIKE_Z = 4.0
MAX_SPIKE_HALF_LIFE_HOURS = 500.0
MAX_SPIKE_Z = 120.0
MIN_COMMON_SETTLEMENTS = 30  # fewer shared instants than this: the pair is not correlated


@dataclass(frozen=True, slots=True)
class FundingStats:
    """Statistics of one venue's settlements (definitions in the module docstring)."""

    observations: int
    cadence_hours: Decimal  # the most common settlement interval
    mean_hourly: Decimal
    std_hourly: Decimal
    ar1: Decimal
    spike_freq: Decimal
    sign_flip_freq: Decimal
    pin_freq: Decimal
    core_mean_hourly: Decimal
    core_std_hourly: Decimal
    core_ar1: Decimal
    spike_mean_abs_z: Decimal  # mean |x - mean| / std over spikes
    spike_rms_z: Decimal  # root mean square of the same (spikes are heavy-tailed)
    spike_up_freq: Decimal
    spike_persistence: Decimal  # share of spikes followed by a spike at the next settlement
    symbol_mean_std_hourly: Decimal

    def to_json_dict(self) -> dict[str, str | int]:
        """Decimals as strings, for JSON."""
        return {k: (v if isinstance(v, int) else str(v)) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class CrossVenueStats:
    """How one symbol's funding moves together on different venues (shared instants only)."""

    correlation: Decimal  # mean Pearson correlation of hourly rates over venue pairs
    core_correlation: Decimal  # the same over instants where neither venue has a spike
    spike_co_occurrence: Decimal  # share of spikes met by a spike on the other venue

    def to_json_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


# Measured by bench/calibrate.py on ../shared/data/funding/{binance,bybit,hyperliquid}.csv.gz
# (ZuShen168/funding_rate_data, realised settlements 2025-08-21T05:00Z .. 2026-08-22T05:00Z, every
# series incl. USDT and USDC quotes; 46,726 / 49,753 / 157,909 rows).
REAL_FUNDING_STATS: dict[str, FundingStats] = {
    "binance": FundingStats(
        observations=46726,
        cadence_hours=Decimal("8"),
        mean_hourly=Decimal("7.341E-7"),
        std_hourly=Decimal("0.00002651"),
        ar1=Decimal("0.5493"),
        spike_freq=Decimal("0.00535"),
        sign_flip_freq=Decimal("0.2507"),
        pin_freq=Decimal("0.2851"),
        core_mean_hourly=Decimal("-0.000002516"),
        core_std_hourly=Decimal("0.00001422"),
        core_ar1=Decimal("0.5113"),
        spike_mean_abs_z=Decimal("8.29"),
        spike_rms_z=Decimal("11.67"),
        spike_up_freq=Decimal("0.032"),
        spike_persistence=Decimal("0.5341"),
        symbol_mean_std_hourly=Decimal("0.000005771"),
    ),
    "bybit": FundingStats(
        observations=49753,
        cadence_hours=Decimal("8"),
        mean_hourly=Decimal("8.776E-8"),
        std_hourly=Decimal("0.000055"),
        ar1=Decimal("0.669"),
        spike_freq=Decimal("0.003115"),
        sign_flip_freq=Decimal("0.2431"),
        pin_freq=Decimal("0.4784"),
        core_mean_hourly=Decimal("-0.000007695"),
        core_std_hourly=Decimal("0.00002444"),
        core_ar1=Decimal("0.5485"),
        spike_mean_abs_z=Decimal("11.16"),
        spike_rms_z=Decimal("16.64"),
        spike_up_freq=Decimal("0.006452"),
        spike_persistence=Decimal("0.4452"),
        symbol_mean_std_hourly=Decimal("0.000008874"),
    ),
    "hyperliquid": FundingStats(
        observations=157909,
        cadence_hours=Decimal("1"),
        mean_hourly=Decimal("0.000002519"),
        std_hourly=Decimal("0.00003298"),
        ar1=Decimal("0.8357"),
        spike_freq=Decimal("0.003724"),
        sign_flip_freq=Decimal("0.1031"),
        pin_freq=Decimal("0.5045"),
        core_mean_hourly=Decimal("-0.000005727"),
        core_std_hourly=Decimal("0.00002122"),
        core_ar1=Decimal("0.8297"),
        spike_mean_abs_z=Decimal("9.267"),
        spike_rms_z=Decimal("13.9"),
        spike_up_freq=Decimal("0.08333"),
        spike_persistence=Decimal("0.7414"),
        symbol_mean_std_hourly=Decimal("0.000007406"),
    ),
}
REAL_CROSS_VENUE = CrossVenueStats(
    correlation=Decimal("0.4876"),
    core_correlation=Decimal("0.5195"),
    spike_co_occurrence=Decimal("0.4829"),
)


def funding_stats(series: Iterable[Sequence[tuple[Decimal, Decimal]]]) -> FundingStats:
    """Statistics of settlement series, each chronological ``(rate_per_interval, interval_hours)``."""
    hourly: list[list[float]] = []
    pinned: list[list[bool]] = []
    intervals: dict[Decimal, int] = {}
    for one in series:
        xs, pins = [], []
        for rate, interval in one:
            h = rate / interval
            xs.append(float(h))
            pins.append(h == PIN_RATE_PER_HOUR)
            intervals[interval] = intervals.get(interval, 0) + 1
        if xs:
            hourly.append(xs)
            pinned.append(pins)
    flat = [x for xs in hourly for x in xs]
    if len(flat) < 2:
        raise ValueError("funding_stats needs at least two settlements")
    m, s = mean(flat), pstdev(flat)
    spike = [[abs(x - m) > SPIKE_Z * s for x in xs] for xs in hourly]
    spikes = [x for xs, sp in zip(hourly, spike) for x, f in zip(xs, sp) if f]
    core = [[not (p or f) for p, f in zip(ps, sp)] for ps, sp in zip(pinned, spike)]
    core_flat = [x for xs, cs in zip(hourly, core) for x, c in zip(xs, cs) if c]
    pairs = sum(len(xs) - 1 for xs in hourly)
    flips = sum(a * b < 0 for xs in hourly for a, b in zip(xs, xs[1:]))
    return FundingStats(
        observations=len(flat),
        cadence_hours=max(intervals, key=lambda k: (intervals[k], k)),
        mean_hourly=_sig(m),
        std_hourly=_sig(s),
        ar1=_sig(_pooled_ar1(hourly, [[True] * len(xs) for xs in hourly])),
        spike_freq=_sig(len(spikes) / len(flat)),
        sign_flip_freq=_sig(flips / pairs if pairs else 0.0),
        pin_freq=_sig(sum(map(sum, pinned)) / len(flat)),
        core_mean_hourly=_sig(mean(core_flat) if core_flat else m),
        core_std_hourly=_sig(pstdev(core_flat) if len(core_flat) > 1 else s),
        core_ar1=_sig(_pooled_ar1(hourly, core)),
        spike_mean_abs_z=_sig(mean(abs(x - m) / s for x in spikes) if spikes else 0.0),
        spike_rms_z=_sig(math.sqrt(mean(((x - m) / s) ** 2 for x in spikes)) if spikes else 0.0),
        spike_up_freq=_sig(sum(x > m for x in spikes) / len(spikes) if spikes else 0.5),
        spike_persistence=_sig(_persistence(spike)),
        symbol_mean_std_hourly=_sig(pstdev([mean(xs) for xs in hourly]) if len(hourly) > 1 else 0.0),
    )


def cross_venue_stats(
    series: Mapping[tuple[str, str], Mapping[int, Decimal]], stats: Mapping[str, FundingStats]
) -> CrossVenueStats:
    """Co-movement of (venue, symbol) series given as {settlement ts_ms: hourly rate}.

    Every venue pair of every symbol with at least ``MIN_COMMON_SETTLEMENTS`` shared instants
    counts once for the correlation; spikes are flagged with each venue's ``stats``.
    """
    by_symbol: dict[str, list[tuple[str, Mapping[int, Decimal]]]] = {}
    for (venue, symbol), points in sorted(series.items()):
        by_symbol.setdefault(symbol, []).append((venue, points))
    correlations: list[float] = []
    core_correlations: list[float] = []
    spikes = matched = 0
    for venues in by_symbol.values():
        for i, (venue_a, a) in enumerate(venues):
            for venue_b, b in venues[i + 1 :]:
                common = sorted(a.keys() & b.keys())
                if len(common) < MIN_COMMON_SETTLEMENTS:
                    continue
                xa = [float(a[t]) for t in common]
                xb = [float(b[t]) for t in common]
                if pstdev(xa) > 0 and pstdev(xb) > 0:
                    correlations.append(correlation(xa, xb))
                fa = _spike_flags(xa, stats[venue_a])
                fb = _spike_flags(xb, stats[venue_b])
                spikes += sum(fa) + sum(fb)
                matched += 2 * sum(p and q for p, q in zip(fa, fb))
                quiet = [(x, y) for x, y, p, q in zip(xa, xb, fa, fb) if not (p or q)]
                if len(quiet) >= MIN_COMMON_SETTLEMENTS:
                    ca, cb = [x for x, _ in quiet], [y for _, y in quiet]
                    if pstdev(ca) > 0 and pstdev(cb) > 0:
                        core_correlations.append(correlation(ca, cb))
    return CrossVenueStats(
        correlation=_sig(mean(correlations)) if correlations else Decimal(0),
        core_correlation=_sig(mean(core_correlations)) if core_correlations else Decimal(0),
        spike_co_occurrence=_sig(matched / spikes) if spikes else Decimal(0),
    )


def _spike_flags(xs: list[float], stats: FundingStats) -> list[bool]:
    m, s = float(stats.mean_hourly), float(stats.std_hourly)
    return [abs(x - m) > SPIKE_Z * s for x in xs]


def stats_from_history(history: FundingHistory) -> tuple[dict[str, FundingStats], CrossVenueStats]:
    """Per-venue ``FundingStats`` over every series, and ``CrossVenueStats`` over the primary
    series (one per venue and symbol)."""
    per_venue: dict[str, list[list[tuple[Decimal, Decimal]]]] = {}
    for s in history.series:
        per_venue.setdefault(s.venue, []).append(list(zip(s.rates, s.interval_hours)))
    stats = {venue: funding_stats(series) for venue, series in sorted(per_venue.items())}
    hourly = {
        key: {t: r / i for t, r, i in zip(s.ts_ms, s.rates, s.interval_hours)}
        for key, s in history.primary_series().items()
    }
    return stats, cross_venue_stats(hourly, stats)


@dataclass(frozen=True, slots=True)
class FundingModel:
    """Simulation parameters for one venue's funding process; rates are hourly fractions."""

    cadence_hours: float
    pin_hourly: float  # the baseline the published rate snaps to
    band_hourly: float  # latent within +-band of the baseline publishes exactly the baseline
    mean_hourly: float  # latent mean across symbols
    between_std_hourly: float  # spread of per-symbol latent means
    within_std_hourly: float  # stationary std of the latent around its symbol mean
    ar1_per_hour: float  # latent persistence over one hour
    spike_start_prob_per_hour: float  # on one symbol of this venue, symbol-wide spikes included
    spike_log_excess_mean: float  # starting size |z| = 4 + exp(N(mean, std)), capped at MAX_SPIKE_Z
    spike_log_excess_std: float
    spike_half_life_hours: float  # spikes decay exponentially: big ones stay spikes longer
    spike_hours_above_threshold: float  # mean time a spike stays beyond 4 std
    spike_up_prob: float
    spike_unit_hourly: float  # spike sizes are z x this (the real pooled std)


def fit_funding_model(stats: FundingStats) -> FundingModel:
    """Parameters whose simulated settlements reproduce ``stats`` (approximately: a Gaussian
    latent is fitted so that its part outside the pin band has the real core mean and std and
    the band holds the real pin share)."""
    pin = float(PIN_RATE_PER_HOUR)
    core_mean, core_std = float(stats.core_mean_hourly), float(stats.core_std_hourly)
    pin_freq = min(max(float(stats.pin_freq), 0.0), 0.95)
    m, s, band = core_mean, core_std, 0.0
    for _ in range(60):  # fixed point: converges in a few dozen rounds for real-looking inputs
        band = _band_for_pin_share(m, s, pin, pin_freq)
        out_mean, out_std = _outside_band_moments(m, s, pin, band)
        m += core_mean - out_mean
        s *= core_std / out_std if out_std > 0 else 1.0
    between = min(float(stats.symbol_mean_std_hourly), 0.8 * s)
    cadence = float(stats.cadence_hours)
    ar1 = min(max(float(stats.core_ar1), 0.01), 0.999)
    log_mean, log_std = _spike_start_sizes(float(stats.spike_mean_abs_z), float(stats.spike_rms_z))
    half_life, hours_above = _spike_half_life(log_mean, log_std, float(stats.spike_persistence), cadence)
    return FundingModel(
        cadence_hours=cadence,
        pin_hourly=pin,
        band_hourly=band,
        mean_hourly=m,
        between_std_hourly=between,
        within_std_hourly=math.sqrt(s * s - between * between),
        ar1_per_hour=ar1 ** (1.0 / cadence),
        spike_start_prob_per_hour=float(stats.spike_freq) / hours_above,
        spike_log_excess_mean=log_mean,
        spike_log_excess_std=log_std,
        spike_half_life_hours=half_life,
        spike_hours_above_threshold=hours_above,
        spike_up_prob=float(stats.spike_up_freq),
        spike_unit_hourly=float(stats.std_hourly),
    )


_NORMAL = NormalDist()


# Spike sizes: a spike starts at |z0| = 4 + exp(mu + sigma N) and decays exponentially, so while
# it is beyond 4 std, log|z| is uniform between log 4 and log z0 and it stays a spike for
# half_life x log2(z0 / 4) hours. Expectations over N use a fixed grid (deterministic, fast).
_GRID = [-5.0 + 0.1 * i for i in range(101)]
_GRID_WEIGHTS = [math.exp(-x * x / 2.0) for x in _GRID]


def _spike_nodes(mu: float, sigma: float) -> list[tuple[float, float, float]]:
    """(weight, z0, log(z0 / 4)) over the grid; weights sum to 1."""
    total = sum(_GRID_WEIGHTS)
    nodes = []
    for x, w in zip(_GRID, _GRID_WEIGHTS):
        z0 = min(SPIKE_Z + math.exp(mu + sigma * x), MAX_SPIKE_Z)
        nodes.append((w / total, z0, math.log(z0 / SPIKE_Z)))
    return nodes


def _observed_spike_moments(mu: float, sigma: float) -> tuple[float, float]:
    """Mean |z| and mean z^2 over the settlements that see a decaying spike beyond 4 std."""
    nodes = _spike_nodes(mu, sigma)
    time_weight = sum(w * lg for w, _, lg in nodes)
    first = sum(w * (z0 - SPIKE_Z) for w, z0, _ in nodes) / time_weight
    second = sum(w * (z0 * z0 - SPIKE_Z * SPIKE_Z) / 2.0 for w, z0, _ in nodes) / time_weight
    return first, second


def _spike_start_sizes(mean_abs_z: float, rms_z: float) -> tuple[float, float]:
    """(mu, sigma) of the starting sizes whose observed sizes have the real mean |z| and rms z."""
    target_first = max(mean_abs_z, SPIKE_Z + 0.5)
    target_second = max(rms_z * rms_z, target_first * target_first)

    def mu_for(sigma: float) -> float:
        lo, hi = -10.0, math.log(MAX_SPIKE_Z)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _observed_spike_moments(mid, sigma)[0] < target_first else (lo, mid)
        return (lo + hi) / 2

    lo, hi = 0.01, 4.0
    for _ in range(30):
        sigma = (lo + hi) / 2
        second = _observed_spike_moments(mu_for(sigma), sigma)[1]
        lo, hi = (sigma, hi) if second < target_second else (lo, sigma)
    sigma = (lo + hi) / 2
    return mu_for(sigma), sigma


def _spike_half_life(mu: float, sigma: float, persistence: float, cadence: float) -> tuple[float, float]:
    """(half-life, mean hours beyond 4 std) such that a spike seen at one settlement is still one
    at the next with probability ``persistence``: E[(T - cadence)+] / E[T] for T = h log2(z0/4)."""
    nodes = _spike_nodes(mu, sigma)
    target = min(max(persistence, 0.0), 0.98)

    def persisting(h: float) -> float:
        times = [(w, h * lg / math.log(2.0)) for w, _, lg in nodes]
        return sum(w * max(t - cadence, 0.0) for w, t in times) / sum(w * t for w, t in times)

    lo, hi = 0.01, MAX_SPIKE_HALF_LIFE_HOURS
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if persisting(mid) < target else (lo, mid)
    half_life = (lo + hi) / 2
    return half_life, sum(w * half_life * lg / math.log(2.0) for w, _, lg in nodes)


def _band_for_pin_share(m: float, s: float, pin: float, share: float) -> float:
    """Half-width c with P(|y - pin| < c) = share for y ~ N(m, s) (bisection; monotone in c)."""
    if share <= 0:
        return 0.0
    lo, hi = 0.0, abs(m - pin) + 10.0 * s
    for _ in range(80):
        c = (lo + hi) / 2
        inside = _NORMAL.cdf((pin + c - m) / s) - _NORMAL.cdf((pin - c - m) / s)
        lo, hi = (c, hi) if inside < share else (lo, c)
    return (lo + hi) / 2


def _outside_band_moments(m: float, s: float, pin: float, band: float) -> tuple[float, float]:
    """Mean and std of y ~ N(m, s) conditioned on |y - pin| >= band (closed form)."""
    low, high = pin - band, pin + band
    a, b = (low - m) / s, (high - m) / s
    cdf_a, cdf_b = _NORMAL.cdf(a), _NORMAL.cdf(b)
    pdf_a, pdf_b = _NORMAL.pdf(a), _NORMAL.pdf(b)
    mass = cdf_a + 1.0 - cdf_b
    if mass <= 1e-12:
        return m, s
    first = m * mass + s * (pdf_b - pdf_a)
    second = (m * m + s * s) * mass - s * (low + m) * pdf_a + s * (high + m) * pdf_b
    out_mean = first / mass
    return out_mean, math.sqrt(max(second / mass - out_mean * out_mean, 0.0))


def _persistence(flags: list[list[bool]]) -> float:
    flagged = followed = 0
    for fs in flags:
        for a, b in zip(fs, fs[1:]):
            if a:
                flagged += 1
                followed += b
    return followed / flagged if flagged else 0.0


def _pooled_ar1(hourly: list[list[float]], use: list[list[bool]]) -> float:
    num = den = 0.0
    for xs, us in zip(hourly, use):
        kept = [x for x, u in zip(xs, us) if u]
        if len(kept) < 2:
            continue
        mu = mean(kept)
        for (a, ua), (b, ub) in zip(zip(xs, us), zip(xs[1:], us[1:])):
            if ua and ub:
                num += (a - mu) * (b - mu)
                den += (a - mu) * (a - mu)
    return num / den if den > 0 else 0.0


def _sig(x: float, digits: int = 4) -> Decimal:
    """A float statistic as a Decimal with ``digits`` significant digits."""
    return Decimal(f"{x:.{digits}g}")
