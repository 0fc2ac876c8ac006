"""The one place that knows the modes: which market feed, executor and clock a command runs with.

``python -m bot --paper`` runs the simulated market on a scaled clock with the paper executor;
``python -m bot backtest`` replays history on a virtual clock with the same paper executor; live
venues plug in here the same way. Everything else (application, engine, strategy, risk, storage)
is identical in every mode and never asks which one it is in.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from typing import TYPE_CHECKING

from bot.core.clock import ScaledClock, iso_utc
from bot.core.ports import Clock, Executor, MarketFeed
from bot.settings import Settings

if TYPE_CHECKING:  # (imported where used: `scan` reads sim_market_config and needs none of them)
    from bot.account_view import AccountSource
    from bot.market_trigger import MarketTrigger

ExecutorFactory = Callable[[MarketFeed, Clock], Awaitable[Executor]]
LIVE_SWITCH_INTERVAL_S = 0.001  # GIL switch interval in live (see live_wiring)


LIVE_FEED_STEP_SECONDS = 1.0  # wall seconds between live feed steps (freshness for the stale-data breakers)
PAPER_RECONCILE_FIRST_WAIT_S = 0.005  # wall seconds a paper strategy pass may pause per reconciliation (Wiring)


@dataclass(frozen=True, slots=True)
class Wiring:
    """A market feed, an executor (opened at start-up) and a clock, chosen once from the command."""

    mode: str  # "paper" | "backtest" | "live": for banners and logs only
    market: MarketFeed
    clock: Clock
    db_path: Path
    open_executor: ExecutorFactory
    description: str
    # Tasks that keep the market feed current for the whole run (live venues' streams).
    background: tuple[Callable[[], Awaitable[None]], ...] = ()
    # Where a strategy pass reads balances and venue sizes (None: ask the executor and the engine
    # every pass, ``bot.account_view.DirectAccount``); live keeps a cached view (``CachedAccount``).
    account: AccountSource | None = None
    # Wakes the strategy loop on market data (live only; None: the timer alone, deterministic).
    trigger: MarketTrigger | None = None
    # The feed loop's interval in clock seconds (None: ``sim.step_seconds``). Live data arrives by
    # itself: its feed step only records freshness and settles paper funding, so it runs often and
    # a venue whose first quotes come late is not left "stale" (no entries) for a whole sim step.
    feed_step_seconds: float | None = None
    # Freeze the start-up heap so collections never walk it (``bot.heap``; live: the venues' market
    # tables made full collections take tens of ms on the entry path).
    freeze_heap_after_start: bool = False
    # Hold the cyclic collector off each strategy pass until its entry orders are on their way
    # (``bot.heap.CollectorHold``; live: a young collection on that path cost up to 3 ms).
    hold_collector_on_entry: bool = False
    # A strategy pass pauses for a running reconciliation, at most this many wall seconds per
    # reconciliation (``bot.pacing.GoesFirst``; 0: never). Paper: on the simulated market the pass
    # is milliseconds of CPU per turn and at a high --speed each of the reconciliation's short
    # turns (one per venue request) would wait behind one; live, orders on market data wait for nothing.
    reconcile_first_wait_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PaperOptions:
    seed: int
    speed: float
    db_path: Path
    start_ts_ms: int


def paper_executor_factory(settings: Settings, venue_db_path: Path | None, *, faults: bool = True,
                           latency: bool = True, starting_balance_usd: Decimal | None = None) -> ExecutorFactory:
    """Opens the paper venues (their own durable store) over ``market``'s books."""

    async def open_executor(market: MarketFeed, clock: Clock) -> Executor:
        from paper.executor import PaperExecutor
        from paper.fault_injection import FaultPlan
        from paper.venue_store import VenueStore

        store = VenueStore.open(venue_db_path, exclusive=True) if venue_db_path is not None else VenueStore.in_memory()
        f = settings.paper.faults
        plan = FaultPlan(
            seed=f.seed,
            reject_probability=f.reject_probability,
            timeout_probability=f.timeout_probability,
            partial_fill_probability=f.partial_fill_probability,
            latency_spike_probability=f.latency_spike_probability,
            latency_spike_s=f.latency_spike_seconds,
            venue_down_probability=f.venue_outage_probability,
            venue_down_s=f.venue_outage_seconds,
        ) if faults else None
        executor = PaperExecutor(
            market,
            market.fee_schedules(),
            store=store,
            latency_s=settings.paper.latency_ms / 1000 if latency else 0.0,
            clock_now_ms=clock.now_ms,
            faults=plan,
            starting_balance_usd=starting_balance_usd or settings.paper.starting_balance_usd,
            # Latency elapses on the mode's clock, so network delay keeps its real proportion to
            # market motion at any --speed (at speed 1 it is wall time; in a backtest, none).
            sleep=clock.sleep,
        )
        settle_only = getattr(market, "settle_only", None)
        if callable(settle_only):  # the venues pay funding only where they hold: no settlement object elsewhere
            settle_only(executor.settlement_keys)
        return executor

    return open_executor


def paper_wiring(settings: Settings, options: PaperOptions, clock: Clock | None = None) -> Wiring:
    """The built-in simulated market, the paper venues, a clock ``options.speed`` times the wall's."""
    from paper.sim_market import SimulatedMarket
    from paper.venue_store import venue_store_path_for

    market = SimulatedMarket(sim_market_config(settings), options.seed, options.start_ts_ms)
    return Wiring(
        mode="paper",
        market=market,
        clock=clock if clock is not None else ScaledClock(options.start_ts_ms, options.speed),
        db_path=options.db_path,
        open_executor=paper_executor_factory(settings, venue_store_path_for(options.db_path)),
        description=(f"paper on the simulated market: sim start {iso_utc(options.start_ts_ms)}, "
                     f"speed x{options.speed:g}, seed {options.seed}"),
        reconcile_first_wait_s=PAPER_RECONCILE_FIRST_WAIT_S,
    )


def sim_market_config(settings: Settings):
    """The simulated market's configuration from [sim], [market] and [paper.faults]."""
    from paper.sim_market import SimFaults, SimMarketConfig

    sim, faults = settings.sim, settings.paper.faults
    return SimMarketConfig(
        venues=tuple(sim.venues),
        symbol_count=sim.symbols,
        step_seconds=sim.step_seconds,
        max_abs_rate_per_hour=settings.market.max_abs_rate_per_hour,
        spot_venues=tuple(sim.spot_venues),
        faults=SimFaults(
            stale_quote_prob=faults.stale_quote_probability,
            absurd_quote_prob=faults.absurd_quote_probability,
            absurd_book_prob=faults.absurd_quote_probability,
            outage_prob=faults.venue_outage_probability,
            outage_seconds=int(faults.venue_outage_seconds),
        ),
    )


def live_wiring(settings: Settings, session: object, db_path: Path, clock: Clock) -> Wiring:
    """Real venues: ``session`` (``adapters.registry.LiveSession``) gives the feed and the executor.

    The executor records our order activity per (venue, symbol) (``bot.order_activity``) for the
    cached account view (``bot.account_view.CachedAccount``: balances and venue sizes read in the
    background, ``live.account_*``); with ``live.trigger_on_market_data`` the feed's book and
    funding updates wake the strategy loop (``bot.market_trigger``)."""
    live = settings.live
    # Venue REST calls of some adapters (pybit) and the database writer run in worker threads; a
    # thread busy in Python holds the GIL up to the switch interval (5 ms by default) while the
    # event loop waits to send an entry's orders. Live hands it back within 1 ms.
    sys.setswitchinterval(min(sys.getswitchinterval(), LIVE_SWITCH_INTERVAL_S))
    from bot.account_view import CachedAccount
    from bot.market_trigger import MarketTrigger
    from bot.order_activity import ActivityTrackingExecutor, OrderActivity

    activity = OrderActivity()
    executor = ActivityTrackingExecutor(session.executor, activity)  # type: ignore[attr-defined]
    account = CachedAccount(clock, activity, refresh_s=live.account_refresh_seconds,
                            max_age_s=live.account_max_age_seconds)

    async def open_executor(market: MarketFeed, clock: Clock) -> Executor:
        return executor  # type: ignore[return-value]

    feed = session.feed  # type: ignore[attr-defined]
    background = [feed.run, account.run]
    if live.busy_poll and live.rehearse_orders:  # idle-time order rehearsals (bot.rehearsals)
        from bot.rehearsals import OrderRehearsals, venue_executors

        background.append(OrderRehearsals(venue_executors(session), live.symbols).run)
    if live.spare_connections:  # idle keep-alive connections per ccxt venue (adapters.ccxt_common.connection_reserve)
        from adapters.ccxt_common.connection_reserve import reserves_for

        background.extend(reserve.run for reserve in reserves_for(getattr(session, "venues", ()),
                                                                  live.spare_connections))
    trigger = None
    if live.trigger_on_market_data:
        trigger = MarketTrigger(min_gap_s=live.trigger_min_gap_seconds)
        feed.subscribe(trigger.notify)
    return Wiring(
        mode="live",
        market=feed,
        clock=clock,
        db_path=db_path,
        open_executor=open_executor,
        description="live on " + ", ".join(feed.venues()),
        background=tuple(background),
        account=account,
        trigger=trigger,
        feed_step_seconds=LIVE_FEED_STEP_SECONDS,
        freeze_heap_after_start=True,
        hold_collector_on_entry=True,
    )


def paper_live_wiring(settings: Settings, feed: MarketFeed, db_path: Path, clock: Clock) -> Wiring:
    """``--paper --market live``: the venues' live public data (``feed``, built without keys) with
    the paper venues matching against it; funding paid on the paper legs at each venue's real
    settlement instant from the live quotes (``paper.live_funding``). Nothing reaches a venue."""
    from paper.live_funding import PaperLiveFeed
    from paper.venue_store import venue_store_path_for

    return Wiring(
        mode="paper",
        market=PaperLiveFeed(feed),  # type: ignore[arg-type]
        clock=clock,
        db_path=db_path,
        # A dry run meets the venues' own reality: no synthetic rejects or outages on top of it.
        open_executor=paper_executor_factory(settings, venue_store_path_for(db_path), faults=False),
        description="paper on live market data from " + ", ".join(feed.venues()) + " (no keys, no orders sent)",
        background=(feed.run,),  # type: ignore[attr-defined]
        feed_step_seconds=LIVE_FEED_STEP_SECONDS,
    )
