"""Fitting the spread forecast on history: ``python -m bot fit --data DIR``.

On an hourly grid over the chosen window, every leg's current hourly rate (its last settled rate
over its interval, as the replay and the bot see it) feeds an exponentially weighted level that
starts at zero, exactly as ``bot.forecast.LegLevel`` does in the running bot. For every pair of
legs on one asset and every hour with ``horizon_hours`` of data ahead, the target is the spread
the pair really paid over the next ``horizon_hours`` (the sum of the settled rates, short minus
long, divided by the hours) and the regressors are the level spread and today's deviation from
it. Least squares without intercept gives ``level_weight`` and ``deviation_weight`` for each
half-life of a grid; the half-life with the lowest mean squared error wins. Statistics are
floats (they estimate coefficients, they never price money); the result is written as Decimals.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from decimal import Decimal

from bot.core.history import FundingHistory

MS_PER_HOUR = 3_600_000
HALF_LIFE_GRID_HOURS = (24, 72, 168, 336, 504, 720)


@dataclass(frozen=True, slots=True)
class FitResult:
    """The chosen parameters and how well they explain the window."""

    level_half_life_hours: int
    level_weight: Decimal
    deviation_weight: Decimal
    samples: int
    mse: float
    r2: float
    r2_current_spread: float  # the old rule (current spread persists) on the same samples
    by_half_life: dict[int, dict[str, float]]


def _leg_grid(times: tuple[int, ...], rates: list[float], intervals: list[float], grid: list[int],
              max_gap_ms: int) -> list[float | None]:
    """The leg's current hourly rate at each grid instant (None before its data or when stale)."""
    out: list[float | None] = []
    for t in grid:
        i = bisect.bisect_right(times, t) - 1
        if i < 0 or t - (times[i] + intervals[i] * MS_PER_HOUR) > max_gap_ms:
            out.append(None)
        else:
            out.append(rates[i] / intervals[i])
    return out


def _paid_prefix(times: tuple[int, ...], rates: list[float], grid: list[int]) -> list[float]:
    """Prefix sums of settled rates: element k = sum of rates settled at or before grid[k]."""
    out, total, i = [], 0.0, 0
    for t in grid:
        while i < len(times) and times[i] <= t:
            total += rates[i]
            i += 1
        out.append(total)
    return out


def fit_forecast(history: FundingHistory, *, from_ts_ms: int, to_ts_ms: int, horizon_hours: int,
                 interchangeable_quotes: tuple[str, ...], max_quote_age_ms: int = 180_000,
                 half_lives: tuple[int, ...] = HALF_LIFE_GRID_HOURS) -> FitResult:
    """Fit the forecast on [from, to] (see the module docstring). Raises ValueError without data."""
    start = (from_ts_ms // MS_PER_HOUR + 1) * MS_PER_HOUR
    grid = list(range(start, to_ts_ms + 1, MS_PER_HOUR))
    if len(grid) <= horizon_hours + 1:
        raise ValueError(f"the window holds {len(grid)} hours; at least {horizon_hours + 2} are needed")
    rank = {q: n for n, q in enumerate(interchangeable_quotes)}
    legs: dict[tuple[str, str], tuple[list[float | None], list[float]]] = {}
    for s in history.series:
        symbol = s.symbol if s.quote in rank else f"{s.symbol}-{s.quote}"
        key = (symbol, s.venue)
        if key in legs:
            continue  # one series per venue and asset, as the replay chooses (preferred quote first)
        rates = [float(r) for r in s.rates]
        intervals = [float(h) for h in s.interval_hours]
        legs[key] = (_leg_grid(s.ts_ms, rates, intervals, grid, max_quote_age_ms), _paid_prefix(s.ts_ms, rates, grid))
    pairs = [(a, b) for a in legs for b in legs if a[0] == b[0] and a[1] < b[1]]
    if not pairs:
        raise ValueError("no asset is quoted on two venues in the window")
    results: dict[int, dict[str, float]] = {}
    best: tuple[float, int, float, float, int, float, float] | None = None
    for half_life in half_lives:
        decay = 1.0 - math.pow(0.5, 1.0 / half_life)
        levels: dict[tuple[str, str], list[float]] = {}
        for key, (current, _paid) in legs.items():
            level, out, previous = 0.0, [], None
            for value in current:
                if previous is not None:
                    level += decay * (previous - level)
                out.append(level)
                previous = value
            levels[key] = out
        sxx = sxz = szz = sxy = szy = syy = sy = scc = scy = 0.0
        n = 0
        for a, b in pairs:
            cur_a, paid_a = legs[a]
            cur_b, paid_b = legs[b]
            lev_a, lev_b = levels[a], levels[b]
            for k in range(len(grid) - horizon_hours):
                ra, rb = cur_a[k], cur_b[k]
                if ra is None or rb is None or cur_a[k + horizon_hours] is None or cur_b[k + horizon_hours] is None:
                    continue
                x = lev_b[k] - lev_a[k]
                c = rb - ra
                z = c - x
                y = ((paid_b[k + horizon_hours] - paid_b[k]) - (paid_a[k + horizon_hours] - paid_a[k])) / horizon_hours
                sxx += x * x; sxz += x * z; szz += z * z; sxy += x * y; szy += z * y  # noqa: E702
                syy += y * y; sy += y; scc += c * c; scy += c * y  # noqa: E702
                n += 1
        det = sxx * szz - sxz * sxz
        if n == 0 or det == 0:
            continue
        w_level = (sxy * szz - szy * sxz) / det
        w_dev = (szy * sxx - sxy * sxz) / det
        sse = syy - 2 * (w_level * sxy + w_dev * szy) + (w_level * w_level * sxx + 2 * w_level * w_dev * sxz
                                                         + w_dev * w_dev * szz)
        sst = syy - sy * sy / n
        sse_current = syy - 2 * scy + scc
        r2 = 1 - sse / sst if sst > 0 else 0.0
        results[half_life] = {"level_weight": w_level, "deviation_weight": w_dev, "mse": sse / n, "r2": r2,
                              "samples": float(n)}
        if best is None or sse / n < best[0]:
            best = (sse / n, half_life, w_level, w_dev, n, r2, 1 - sse_current / sst if sst > 0 else 0.0)
    if best is None:
        raise ValueError("not enough overlapping data to fit (need two venues of one asset over the horizon)")
    mse, half_life, w_level, w_dev, n, r2, r2_current = best
    return FitResult(
        level_half_life_hours=half_life,
        level_weight=_round(w_level),
        deviation_weight=_round(max(w_dev, 0.0)),
        samples=n,
        mse=mse,
        r2=r2,
        r2_current_spread=r2_current,
        by_half_life=results,
    )


def _round(value: float) -> Decimal:
    return Decimal(f"{value:.3f}")


def forecast_toml(result: FitResult) -> str:
    """The ``[forecast]`` table for settings.toml."""
    return (
        "[forecast]\n"
        'mode = "mean_reverting"\n'
        f'level_half_life_hours = "{result.level_half_life_hours}"\n'
        f'level_weight = "{result.level_weight}"\n'
        f'deviation_weight = "{result.deviation_weight}"\n'
    )


def update_settings_text(text: str, result: FitResult) -> str:
    """``text`` (a settings file) with its ``[forecast]`` values replaced, comments kept; the
    table is appended when the file has none."""
    values = {"level_half_life_hours": f'"{result.level_half_life_hours}"',
              "level_weight": f'"{result.level_weight}"', "deviation_weight": f'"{result.deviation_weight}"'}
    lines = text.splitlines(keepends=True)
    section, seen, out = None, set(), []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.split("#")[0].strip()
        elif section == "[forecast]" and "=" in stripped and not stripped.startswith("#"):
            key, rest = line.split("=", 1)
            name = key.strip()
            if name in values:
                comment = rest[rest.index("#"):] if "#" in rest else "\n"
                value = values[name]
                pad = max(1, 40 - len(f"{name} = {value}"))
                line = f"{name} = {value}" + (" " * pad + comment if "#" in rest else "\n")
                seen.add(name)
        out.append(line)
    if not seen:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        out.append("\n" + forecast_toml(result))
    return "".join(out)
