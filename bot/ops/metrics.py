"""Prometheus metrics (prometheus-client), served at ``/metrics`` by the web server.

Gauges are read from the running application at scrape time (a custom collector: positions,
exposure per venue, funding and fees, breaker states, data age, bot and trading state), so they
cost nothing between scrapes. Histograms are observed as things happen: order latency (timed
around the executor), unhedged windows (from the engine's measurements), event-loop lag (a
sampler task) and notification outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.core.domain import ZERO
from bot.core.ports import Clock, Executor, MarketFeed
from bot.ops.views import mid_price, venue_data_age_ms
from bot.wiring import Wiring
from risk.breakers import BreakerState

if TYPE_CHECKING:
    from bot.app import Application

PREFIX = "funding_arb"
LAG_SAMPLE_S = 0.25
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Metrics:
    """One registry per bot process (never the global one, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.order_latency = Histogram(
            f"{PREFIX}_order_latency_seconds", "Wall time from sending an order to the venue's answer",
            ["venue", "outcome"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.unhedged_window = Histogram(
            f"{PREFIX}_unhedged_window_seconds", "Wall time a position had net exposure while entering or exiting",
            registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
        self.loop_lag = Histogram(
            f"{PREFIX}_loop_lag_seconds", "How late the event loop woke a sleeping task (wall seconds)",
            registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
        self.loop_lag_last = Gauge(f"{PREFIX}_loop_lag_last_seconds", "The latest event-loop lag sample",
                                   registry=self.registry)
        self.notifications = Counter(f"{PREFIX}_notifications_total", "Notifications by outcome",
                                     ["outcome"], registry=self.registry)
        self.web_requests = Counter(f"{PREFIX}_web_requests_total", "Web requests by status class",
                                    ["status"], registry=self.registry)
        self._unhedged_seen = 0
        self._app: Application | None = None

    def attach(self, app: "Application") -> None:
        """Start reading live gauges from ``app``."""
        self._app = app
        self.registry.register(_AppCollector(app, self))

    def render(self) -> bytes:
        self.sync_engine()
        return generate_latest(self.registry)

    def sync_engine(self) -> None:
        """Observe the unhedged windows the engine measured since the last call."""
        engine = self._app.engine if self._app is not None else None
        if engine is None:
            return
        windows = engine.metrics.unhedged_windows_ms
        for window_ms in windows[self._unhedged_seen:]:
            self.unhedged_window.observe(window_ms / 1000)
        self._unhedged_seen = len(windows)

    async def loop_lag_sampler(self) -> None:
        """Sleep a fixed wall interval and record how much later than asked the loop woke us."""
        while True:
            start = time.perf_counter()
            await anyio.sleep(LAG_SAMPLE_S)
            lag = max(0.0, time.perf_counter() - start - LAG_SAMPLE_S)
            self.loop_lag.observe(lag)
            self.loop_lag_last.set(lag)
            self.sync_engine()

    def timed_wiring(self, wiring: Wiring) -> Wiring:
        """The same wiring whose executor reports each order's latency here."""
        opener = wiring.open_executor

        async def open_timed(market: MarketFeed, clock: Clock) -> Executor:
            return TimedExecutor(await opener(market, clock), self.order_latency)  # type: ignore[return-value]

        return replace(wiring, open_executor=open_timed)


class TimedExecutor:
    """Delegates to the real executor; times ``place_order`` (wall clock) into a histogram."""

    def __init__(self, inner: Executor, histogram: Histogram) -> None:
        self._inner = inner
        self._histogram = histogram

    async def place_order(self, request: Any) -> Any:
        start = time.perf_counter()
        outcome = "error"
        try:
            report = await self._inner.place_order(request)
            outcome = str(getattr(report.status, "value", report.status))
            return report
        finally:
            self._histogram.labels(request.venue, outcome).observe(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AppCollector(Collector):
    """Live gauges read from the application at scrape time."""

    def __init__(self, app: "Application", metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        app = self.app
        engine = app.engine
        bot = GaugeMetricFamily(f"{PREFIX}_bot_state", "1 for the bot machine's current state", labels=["state"])
        bot.add_metric([app.bot.state.value], 1)
        yield bot
        trading = GaugeMetricFamily(f"{PREFIX}_trading_state", "1 for the current trading state", labels=["state"])
        trading.add_metric([app.board.trading_state().value], 1)
        yield trading
        positions = GaugeMetricFamily(f"{PREFIX}_positions", "Positions known to the engine by state",
                                      labels=["state"])
        by_state: dict[str, int] = {}
        exposure: dict[str, Decimal] = {v: ZERO for v in app.market.venues()}
        if engine is not None:
            for pos in engine.positions.values():
                state = pos.state.value if hasattr(pos.state, "value") else str(pos.state)
                by_state[state] = by_state.get(state, 0) + 1
            for pos in engine.active_positions():
                for venue, size in ((pos.long_venue, pos.long_filled_base), (pos.short_venue, pos.short_filled_base)):
                    mid = mid_price(app, venue, pos.symbol)
                    if mid is not None:
                        exposure[venue] = exposure.get(venue, ZERO) + abs(size) * mid
        active = sum(n for s, n in by_state.items() if s != "closed")
        for state, count in sorted(by_state.items()):
            positions.add_metric([state], count)
        yield positions
        open_gauge = GaugeMetricFamily(f"{PREFIX}_open_positions", "Positions not yet closed")
        open_gauge.add_metric([], active)
        yield open_gauge
        exp = GaugeMetricFamily(f"{PREFIX}_exposure_usd", "Gross notional held per venue at mid (USD)",
                                labels=["venue"])
        for venue, usd in sorted(exposure.items()):
            exp.add_metric([venue], float(usd))
        yield exp
        funding = sum(engine.funding_usd.values(), ZERO) if engine else ZERO
        fees = sum(engine.fees_usd.values(), ZERO) if engine else ZERO
        for name, value, text in (("funding_usd", funding, "Funding received minus paid, all positions (USD)"),
                                  ("fees_usd", fees, "Trading fees paid, all positions (USD)")):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", text)
            family.add_metric([], float(value))
            yield family
        breakers = GaugeMetricFamily(f"{PREFIX}_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open",
                                     labels=["breaker"])
        board = app.board
        for breaker in (board.manual, board.drawdown, board.unhedged, *board.venue_errors.values(),
                        *board.stale.values()):
            breakers.add_metric([breaker.name], _BREAKER_VALUE.get(breaker.state, 2))
        yield breakers
        age = GaugeMetricFamily(f"{PREFIX}_data_age_seconds", "Age of each venue's freshest quote (clock seconds)",
                                labels=["venue"])
        for venue, age_ms in sorted(venue_data_age_ms(app).items()):
            if age_ms is not None:
                age.add_metric([venue], age_ms / 1000)
        yield age
