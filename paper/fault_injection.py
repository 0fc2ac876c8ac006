"""Injected venue faults for the paper executor: rejects, ambiguous timeouts, partial fills,
latency spikes and venue-down windows, all drawn from one seeded RNG so a run is reproducible.

``FaultPlan`` is the settings-like description (default: no faults); ``FaultInjector`` is the
mutable per-run state (the RNG and the down windows) the executor consults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from decimal import Decimal

from adapters.errors import TemporaryVenueError


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Fault probabilities (0..1, per request) and their parameters. The default injects nothing.

    - ``reject_probability``: ``place_order`` raises ``OrderRejected``; nothing executes.
    - ``timeout_probability``: ``place_order`` raises ``TemporaryVenueError``; with probability 1/2
      the order executed (and is visible via ``get_order``) before the "timeout", else it never did.
    - ``partial_fill_probability``: a MARKET/IOC order fills only a random fraction (whole lots,
      possibly zero) and is CANCELED for the rest.
    - ``latency_spike_probability``/``latency_spike_s``: extra wall-time delay on a request.
    - ``venue_down_probability``/``venue_down_s``: a venue-scoped request takes the venue down for
      ``venue_down_s`` seconds of clock time; every call to it raises ``TemporaryVenueError`` meanwhile.
    """

    seed: int = 0
    reject_probability: float = 0.0
    timeout_probability: float = 0.0
    partial_fill_probability: float = 0.0
    latency_spike_probability: float = 0.0
    latency_spike_s: float = 0.0
    venue_down_probability: float = 0.0
    venue_down_s: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_probability") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {value}")
            if f.name.endswith("_s") and value < 0.0:
                raise ValueError(f"{f.name} must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class TimeoutDraw:
    """Outcome of the timeout fault for one order."""

    timed_out: bool
    executed: bool  # only meaningful when timed_out: did the venue execute before the timeout?


class FaultInjector:
    """Draws faults from ``plan`` with ``random.Random(plan.seed)`` and tracks venue-down windows.

    A draw is made only when its probability is non-zero, so the default plan never touches the RNG.
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self._rng = random.Random(self.plan.seed)
        self._down_until_ms: dict[str, int] = {}

    def _hit(self, probability: float) -> bool:
        return probability > 0.0 and self._rng.random() < probability

    def down_for(self, venue: str, seconds: float, now_ms: int) -> None:
        """Take ``venue`` down for ``seconds`` of clock time from ``now_ms``."""
        until = now_ms + int(seconds * 1000)
        self._down_until_ms[venue] = max(until, self._down_until_ms.get(venue, 0))

    def is_down(self, venue: str, now_ms: int) -> bool:
        return now_ms < self._down_until_ms.get(venue, 0)

    def check_up(self, venue: str, now_ms: int) -> None:
        """Raise ``TemporaryVenueError`` while ``venue`` is down; may start a random outage first."""
        if self._hit(self.plan.venue_down_probability):
            self.down_for(venue, self.plan.venue_down_s, now_ms)
        if self.is_down(venue, now_ms):
            raise TemporaryVenueError(venue, "venue unavailable (injected outage)")

    def draw_reject(self) -> bool:
        return self._hit(self.plan.reject_probability)

    def draw_timeout(self) -> TimeoutDraw:
        if not self._hit(self.plan.timeout_probability):
            return TimeoutDraw(timed_out=False, executed=True)
        return TimeoutDraw(timed_out=True, executed=self._rng.random() < 0.5)

    def draw_partial_fraction(self) -> Decimal | None:
        """The fraction of an IOC to fill, or None for no partial-fill fault."""
        if not self._hit(self.plan.partial_fill_probability):
            return None
        return Decimal(str(round(self._rng.random(), 6)))

    def draw_latency_spike_s(self) -> float:
        return self.plan.latency_spike_s if self._hit(self.plan.latency_spike_probability) else 0.0
