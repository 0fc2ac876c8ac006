"""One market step's perp quotes as arrays, for a strategy pass over thousands of keys.

A feed that can describe its quotes as columns (the simulated market: ``SimulatedMarket.quote_table``)
lets a strategy pass screen every (venue, symbol) key with numpy and build the exact, validated
``FundingQuote`` of only the few keys it then looks at (``bot.array_pass``). Everything that decides
uses those exact quotes; the float columns only choose which keys are worth building.

Key ``k`` is ``keys[k]`` = (venue ``k // n_symbols``, symbol ``k % n_symbols``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from bot.core.domain import FundingQuote


@dataclass(slots=True)
class QuoteTable:
    """Columns of one step (see the module docstring).

    ``present``: the key has a quote this step (no outage). ``regular``: its validated quote is
    the step's ordinary build, described exactly by ``units`` (rate per interval in units of the
    venue's rate quantum, ``10 ** quantum_exp[venue]``) and ``hours`` (interval), ``ts_ms`` being
    its time; ``build(k)`` makes it. A present key that is not regular has its exact validated
    quote (or None: rejected) in ``exact``. ``hourly`` is the rate per hour as a float (NaN when
    unusable): for screening only. ``generation`` changes whenever the feed issues new quote
    objects (a regular key's quote at an unchanged generation is the same quote as before).
    ``spread_lb`` (optional) bounds each key's book spread from below, for screening only.
    """

    keys: list[tuple[str, str]]
    n_venues: int
    n_symbols: int
    generation: int
    ts_ms: int
    present: np.ndarray
    regular: np.ndarray
    units: np.ndarray
    hours: np.ndarray
    hourly: np.ndarray
    quantum_exp: list[int]
    exact: dict[int, FundingQuote | None]
    build: Callable[[int], FundingQuote]
    # Optional: per key a lower bound of its book's (best ask - best bid) / mid (0.0: unknown), so
    # the screen can charge the spread as the scanner's close look does (``bot.array_pass``).
    spread_lb: np.ndarray | None = None
    _built: dict[int, FundingQuote | None] = field(default_factory=dict)

    def quote(self, k: int) -> FundingQuote | None:
        """Key ``k``'s exact validated quote of this step (None: absent or rejected); built once."""
        found = self._built.get(k, self)
        if found is self:
            if not self.present[k]:
                found = None
            elif self.regular[k]:
                found = self.build(k)
            else:
                found = self.exact.get(k)
            self._built[k] = found  # type: ignore[assignment]
        return found  # type: ignore[return-value]

    def hourly_decimal(self, k: int) -> Decimal:
        """A regular key's exact hourly rate (``rate_per_interval / interval_hours`` of its quote)."""
        return _hourly(int(self.units[k]), self.quantum_exp[k // self.n_symbols], int(self.hours[k]))


def _hourly(units: int, exp: int, hours: int) -> Decimal:
    # exactly as the quote computes it: (Decimal(units) x quantum) / Decimal(hours); Decimal(units)
    # scaled by the quantum's exponent is that product (same coefficient, same exponent)
    return Decimal(units).scaleb(exp) / Decimal(hours)
