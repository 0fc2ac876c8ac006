"""The application: market feed, executor, engine, strategy, breakers and control, in every mode.

The market feed, executor and clock are chosen once at start-up (``bot.wiring``): the simulated
market for ``--paper``, a historical replay for ``backtest``, venue feeds for ``--live``.
Everything the supervisor or the backtest driver drives (strategy, reconciliation, breakers,
shutdown) is shared.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.lowlevel
from loguru import logger

from bot.account_view import AccountUnknown, DirectAccount
from bot.array_pass import MarketPass
from bot.core.domain import ZERO, ExecutionMode, MarketSnapshot, Opportunity
from bot.core.ports import Clock, Executor, MarketFeed
from bot.engine import EngineConfig, TradingEngine
from bot.forecast import SpreadForecaster
from bot.forecast_columns import warm_up
from bot.heap import CollectorHold, HeapFreeze
from bot.incremental import RankingSource, RankSettings
from bot.logging_setup import log_event
from bot.market_catch_up import MarketCatchUp
from bot.pacing import GoesFirst, Pacer
from bot.params import breaker_settings, forecast_params, strategy_params
from bot.settings import Settings
from bot.strategy import (
    AccountView,
    HeldView,
    PlannedEntry,
    plan_entry,
    plan_exits,
)
from bot.wiring import Wiring
from machines.bot import BotFsm, BotState
from machines.errors import FsmError
from machines.position import PositionState
from risk.breakers import BoardUpdate, BreakerBoard
from risk.trading_state import GateDecision, OrderIntent, TradingState, gate_order
from storage import AsyncStorage, EventRecord, PositionRecord, Severity

if TYPE_CHECKING:
    from bot.ops.terminal import StatusView

CONTROL_HALT_KEY = "control.halt"
CONTROL_FLATTEN_KEY = "control.flatten"
FORECAST_LEVELS_KEY = "forecast.levels"
FORECAST_SAVE_INTERVAL_MS = 15 * 60_000  # reconciliation saves the forecast levels at most this often (clock time)
FORECAST_SAVE_MIN_WALL_S = 5.0  # ... and at most this often in wall time
MS_PER_HOUR = 3_600_000
# Start-up: how long (wall seconds) to keep looking up a restored position's orders that the venue
# does not know YET (every venue's request expiry plus clock-skew allowance is 7 s), polled this often.
RESTART_SETTLE_MAX_S = 15.0
RESTART_SETTLE_POLL_S = 0.25
# While running: an order the venue did not know YET (a send that timed out) is looked up again this
# often (wall seconds) by the strategy pass, so its position goes on within seconds of the answer
# becoming final, not a whole ``reconcile.interval_seconds`` later.
NOT_FOUND_YET_RETRY_S = 1.0


class Application:
    """Everything the supervisor (or the backtest driver) drives, in every mode.

    The market feed, the executor and the clock come from a ``Wiring`` chosen once at start-up
    (``bot.wiring``); nothing in here asks which mode it runs in.
    """

    def __init__(self, settings: Settings, wiring: Wiring, status_out: TextIO = sys.stdout) -> None:
        self.settings = settings
        self.wiring = wiring
        self.status_out = status_out
        self.clock: Clock = wiring.clock
        self.params = strategy_params(settings)
        self.market: MarketFeed = wiring.market
        self.account = wiring.account if wiring.account is not None else DirectAccount()  # bot.account_view
        self.store: AsyncStorage | None = None
        self.executor: Executor | None = None
        self.engine: TradingEngine | None = None
        self.heap = HeapFreeze()  # live: the start-up heap frozen (bot.heap)
        # live: no cyclic collection between a pass's start and its entry orders leaving (bot.heap)
        self.collector = CollectorHold(enabled=wiring.hold_collector_on_entry)
        self._entry_bot_fire: Opportunity | None = None  # an entry's bot "begin_open", fired once its orders are away
        self.bot = BotFsm()
        self.board = BreakerBoard.create(self.market.venues(), breaker_settings(settings))
        self.forecaster = SpreadForecaster(forecast_params(settings))
        self.failed_entries: dict[tuple[str, str, str], int] = {}
        self.entry_info: dict[str, tuple[Decimal, int, Decimal]] = {}
        # why the last pass's best candidate was not entered (None: entered, or nothing to enter); the
        # status line shows it and the log gets one INFO line each time it changes
        self.entry_denial: str | None = None
        self.last_ranked: list[Opportunity] | None = None  # the last strategy pass's ranking (None: no pass yet)
        self._entry_denial_key: tuple | None = None
        self._stopping = False
        self._not_found_yet_retry_at = 0.0  # (monotonic s) see NOT_FOUND_YET_RETRY_S
        self._equity_cache: dict[str, Decimal] = {}
        self._pending_events: list[tuple[str, str, str, str | None, dict | None]] = []
        self.catch_up = MarketCatchUp(settings.sim.step_seconds)
        self.status_view: StatusView | None = None
        self._said_behind = False
        self._forecast_saved_ms: int | None = None
        self._forecast_saved_wall = 0.0
        self.ranking = RankingSource(RankSettings(
            notional_usd=self.params.notional_usd, horizon_hours=self.params.horizon_hours,
            max_quote_age_ms=self.params.max_quote_age_ms, estimated_slippage_bps=self.params.estimated_slippage_bps,
            execution=self.params.execution, pair_kinds=self.params.pair_kinds,
            min_expected_net_usd=self.params.entry.min_expected_net_usd))
        self.market_pass = MarketPass(self.market, self.forecaster, self.ranking)
        self.pacers = {
            "feed": self._pacer("feed", wiring.feed_step_seconds or settings.sim.step_seconds),
            "strategy": self._pacer("strategy", settings.strategy.loop_interval_seconds, first_delay_s=0.0),
            "reconcile": self._pacer("reconcile", settings.reconcile.interval_seconds),
        }
        # paper: a running reconciliation goes before the strategy pass's long turns (bot.pacing),
        # unless this strategy pass itself started a whole interval late
        strategy_pacer = self.pacers["strategy"]
        self.reconcile_first = GoesFirst(
            wiring.reconcile_first_wait_s, unless=lambda: strategy_pacer.last_lag_ms >= strategy_pacer.interval_ms)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        settings = self.settings
        db_path = self.wiring.db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = await AsyncStorage.open(db_path)
        self.market.advance_to(self.clock.now_ms())
        self.executor = await self.wiring.open_executor(self.market, self.clock)
        ex = settings.execution
        self.engine = TradingEngine(
            executor=self.executor,
            store=self.store,
            clock=self.clock,
            config=EngineConfig(
                leg_timeout_s=ex.leg_timeout_seconds,
                repair_attempts=ex.repair_attempts,
                repair_widen_bps=ex.repair_widen_bps,
                max_slippage_bps=settings.risk.max_slippage_bps,
                hedge_tolerance_lots=ex.hedge_tolerance_lots,
                orphan_policy=settings.reconcile.orphan_policy,
                execution=ExecutionMode(settings.strategy.execution),
                maker_timeout_s=ex.maker_timeout_seconds,
                maker_offset_ticks=ex.maker_offset_ticks,
            ),
            book=self.market.book,
            instrument=self.market.instrument,
            gate=self.gate,
            on_unhedged_window=self._on_unhedged_window,
            on_venue_result=self._on_venue_result,
            on_orders_away=self._orders_away,
            known_venues=self.market.venues(),
            fees=self.market.fee_schedules().get,
        )
        await self.bot_transition("recover", "start-up reconciliation")
        restored = await self.engine.restore()
        # A close the restart found in flight is finished first: before the forecast's warm-up and the
        # start-up reconciliation's venue reads (seconds each on a real venue), one leg may be open.
        # The pending orders are looked up; one the kill left unsent is "not found yet" for seconds
        # (``_settle_restored`` waits for the final answer); then every closing position whose orders
        # are all answered is driven flat (reduce-only: it cannot add exposure whatever the venue holds).
        await self.engine.look_up_pending_orders()
        await self.engine.resume_closing()  # not behind another position's "not found yet" wait
        await self._settle_restored()
        await self.engine.resume_closing()
        await self._load_forecast_history()
        for record in await self.store.load_open_positions():
            self.entry_info[record.id] = self._entry_info(record)
        findings = await self.engine.reconcile()
        await self.event("startup", "info",
                         f"{self.wiring.mode} bot started: {restored} position(s) restored, "
                         f"{len(findings)} reconciliation finding(s); {self.wiring.description}")
        halt = await self.store.get_kv(CONTROL_HALT_KEY)
        if halt:
            self._apply_board(self.board.kill(self.clock.now_ms(), halt))
        self._record_quotes(self.clock.now_ms())  # the first market data clears the stale-data breakers
        await self.account.attach(self.executor, self.engine.venue_sizes)
        await self._settle_restored()
        await self._sync_bot_state()
        if self.wiring.freeze_heap_after_start:
            frozen = self.heap.freeze()
            logger.bind(kind="heap_frozen").debug(f"start-up heap frozen: {frozen} objects")

    async def _settle_restored(self) -> None:
        """Finish what a restart left in flight before the loops start. A close (or any order)
        persisted just before a kill is looked up at start-up; if the request never reached the
        venue, the venue says "not found yet" until its expiry passes (seconds), the position cannot
        be resumed meanwhile, and the next chance was the first periodic reconciliation, a whole
        ``reconcile.interval_seconds`` later, while entries went on. Bounded: a venue that does not
        answer at all is left to reconciliation, as before."""
        assert self.engine is not None
        deadline = time.monotonic() + RESTART_SETTLE_MAX_S
        while self.engine.waiting_not_found_yet() and time.monotonic() < deadline:
            await anyio.sleep(RESTART_SETTLE_POLL_S)
            await self.engine.resume_not_found_yet()

    async def _load_forecast_history(self) -> None:
        """The forecast's levels: from the database (a restart), else from the market's history
        of the last ``forecast.warmup_hours`` (a fresh start), so they never start empty."""
        assert self.store is not None
        saved = await self.store.get_kv(FORECAST_LEVELS_KEY)
        if saved and self.forecaster.load_text(saved):
            return
        count = warm_up(self.forecaster, self.market, self.settings.forecast.warmup_hours)  # columns, if any
        if count is None:
            settlements = self.market.history_settlements(self.settings.forecast.warmup_hours)
            for s in settlements:
                if s.interval_hours > 0:
                    self.forecaster.observe(s.venue, s.symbol, s.ts_ms, s.rate / s.interval_hours)
            count = len(settlements)
        if count:
            await self.event("forecast_history", "info",
                             f"spread forecast warmed up on {count} settlement(s) of the last "
                             f"{self.settings.forecast.warmup_hours} h")

    async def save_forecast(self, *, at_most_every_ms: int = 0) -> None:
        """Persist the forecast's levels (kv), so a restart continues from them. With
        ``at_most_every_ms`` a save within that much clock time of the previous one is skipped
        (the text holds every leg: thousands of lines with a large universe)."""
        if self.store is None:
            return
        now = self.clock.now_ms()
        if at_most_every_ms and self._forecast_saved_ms is not None and (
                now - self._forecast_saved_ms < at_most_every_ms
                or time.monotonic() - self._forecast_saved_wall < FORECAST_SAVE_MIN_WALL_S):
            return  # (and at most every few wall seconds: at a high --speed the text is the cost)
        if at_most_every_ms:  # the periodic save: thousands of legs, the other loops run in between
            parts = []
            for part in self.forecaster.text_parts():
                parts.append(part)
                await anyio.lowlevel.checkpoint()
            text = "\n".join(parts)
        else:  # at close (and on request): in one go, no other loop gets a turn before the write
            text = self.forecaster.to_text()
        await self.store.set_kv(FORECAST_LEVELS_KEY, text, now)
        self._forecast_saved_ms, self._forecast_saved_wall = now, time.monotonic()

    async def close(self) -> None:
        self.heap.release()
        if self.store is not None:
            await self.save_forecast()
            await self.store.aclose()
        if self.executor is not None:
            await self.executor.aclose()

    # ------------------------------------------------------------------ loops
    def _pacer(self, name: str, interval_s: float, first_delay_s: float | None = None) -> Pacer:
        return Pacer(name, self.clock, interval_s, first_delay_s=first_delay_s,
                     on_behind=self._on_loop_behind, on_recovered=self._on_loop_recovered)

    def _on_loop_behind(self, pacer: Pacer, lag_ms: int) -> None:
        """A loop fell whole intervals behind its schedule: the market cannot be followed at this
        speed. Said once, clearly (event + log); later episodes only show in the status line."""
        speed = getattr(self.clock, "speed", None)
        at = f" at --speed {speed:g}" if speed is not None else ""
        message = (f"cannot keep up{at}: the {pacer.name} loop started {lag_ms / 1000:g} s late "
                   f"(interval {pacer.interval_ms / 1000:g} s); its missed passes are skipped, not queued. "
                   f"Lower --speed, or trade fewer symbols/venues")
        if self._said_behind:
            logger.bind(kind="loop_behind", loop=pacer.name).info(message)
            return
        self._said_behind = True
        logger.bind(kind="loop_behind", loop=pacer.name).warning(message)
        self._pending_events.append(("loop_behind", "warning", message, None,
                                     {"loop": pacer.name, "lag_ms": str(lag_ms), "interval_ms": str(pacer.interval_ms)}))

    def _on_loop_recovered(self, pacer: Pacer, lag_ms: int) -> None:
        logger.bind(kind="loop_on_time", loop=pacer.name).info(
            f"the {pacer.name} loop is on schedule again (lag {lag_ms / 1000:g} s)")

    def lag_report(self) -> dict[str, dict]:
        """Each loop's pace: ticks, missed ticks and lag (clock ms), for the status line and benchmarks."""
        return {name: pacer.stats().to_json_dict() for name, pacer in self.pacers.items()}

    async def feed_loop(self) -> None:
        pacer = self.pacers["feed"]
        while True:
            await pacer.wait()
            await self.feed_step()

    async def feed_step(self) -> None:
        """Advance the market to now; the venues settle funding and match resting orders; feed breakers."""
        assert self.executor is not None and self.engine is not None
        now = self.clock.now_ms()
        payments = await self.catch_up.advance(self.market, self.executor, now)  # bounded slices, yields
        if payments:
            await self.engine.record_funding(payments)
        if lag := self.catch_up.observe(self.clock.now_ms(), self.market):
            await self.event(lag.kind, lag.severity, lag.message)
        # Resting maker entries: hedge the fills this step's matching made, end timed-out rests.
        await self.engine.work_makers()
        self._record_quotes(now)

    def _record_quotes(self, now_ms: int) -> None:
        # Only each venue's freshest quote matters to its stale-data breaker: one update per venue.
        # A feed that can tell it without building every quote (the simulated market) is asked so.
        per_venue = getattr(self.market, "latest_quote_ts_by_venue", None)
        if callable(per_venue):
            latest: dict[str, int] = per_venue()
        else:
            latest = {}
            for quote in self.market.quotes():
                if quote.ts_ms > latest.get(quote.venue, -1):
                    latest[quote.venue] = quote.ts_ms
        for venue, ts_ms in latest.items():
            self._apply_board(self.board.record_quote(venue, ts_ms, now_ms))

    async def strategy_loop(self) -> None:
        pacer = self.pacers["strategy"]
        trigger = self.wiring.trigger  # live: market data wakes a pass at once (bot.market_trigger)
        while True:
            if trigger is None:
                await pacer.wait()
            elif await trigger.wait(pacer) == "market" and (self._stopping or not self.bot.allows_entries) \
                    and not self._not_found_yet_due():
                continue  # no entry can be made: exits keep the timer's cadence
            await self.strategy_step()

    def _not_found_yet_due(self) -> bool:
        """A position waits on an order the venue did not know yet, and it is time to look again."""
        return bool(self.engine is not None and self.engine.not_found_yet and not self._stopping
                    and time.monotonic() >= self._not_found_yet_retry_at)

    async def strategy_step(self) -> None:
        """One pass: exits first (they free capacity and reduce risk), then at most one entry.

        Live holds the cyclic collector off the pass until its entry orders are on their way (the
        engine's ``on_orders_away``), or until an exit is sent, or the pass ends (``bot.heap``)."""
        self.collector.hold()
        try:
            await self._strategy_pass()
        finally:
            self.collector.release()

    async def _strategy_pass(self) -> None:
        assert self.engine is not None and self.executor is not None
        await self.reconcile_first.wait_if_running()  # paper: a running reconciliation first (bot.pacing)
        if self._not_found_yet_due():
            # A position held back by an order the venue did not know yet (live only): look again.
            self._not_found_yet_retry_at = time.monotonic() + NOT_FOUND_YET_RETRY_S
            self.collector.release()  # look-ups wait for the venues' answers: not held that long
            with anyio.CancelScope(shield=True):  # it may send orders (a repair, the rest of a close)
                await self.engine.resume_not_found_yet()
            await self._sync_bot_state()
        # Ranking and exits read each quote's forecast rate; the venues' current rates stay as they are.
        # bot.array_pass: lazy, sliced; a running reconciliation goes first between slices (bot.pacing)
        snapshot = await self.market_pass.snapshot_yielding(self.clock.now_ms(), self.reconcile_first.pause)
        self._apply_board(self.board.tick(snapshot.now_ts_ms))
        await self._record_equity(snapshot)
        await self.reconcile_first.wait_if_running()  # milliseconds of ranking next: a reconciliation first
        ranked = self.market_pass.ranked(snapshot)  # one ranking per pass (screened, or incremental when quiet)
        self.last_ranked = ranked  # what the status line shows: the strategy's own (forecast) view
        # (the venues' sizes are read after the ranking: the other loops get a turn between the two,
        # and the held views are built from the engine right after that read, as before)
        held = self.held_views(venue_sizes=await self._venue_sizes())
        best = ranked[0] if ranked else None
        for planned in plan_exits(snapshot, held, self.params, best):
            self.collector.release()  # an exit waits for the venues' answers: not held that long
            pos = self.engine.positions[planned.position_id]
            await self.bot_transition("start_close", f"{pos.symbol}: {planned.decision.reason.value}")
            with anyio.CancelScope(shield=True):
                await self.engine.close_position(pos, planned.decision.reason.value, planned.decision.detail,
                                                 emergency=planned.decision.is_emergency)
            await self._sync_bot_state()
        self._retire_closed()
        await self._sync_bot_state()
        if self._stopping or not self.bot.allows_entries:
            return
        planned_entry, denied = plan_entry(snapshot, self.held_views(include_unhedged=True), self._account_view(),
                                           self.params, ranked=ranked)
        if planned_entry is None:
            self._note_entry_denial(denied[0] if denied else None)
            return
        self._note_entry_denial(None)
        await self._enter(planned_entry.opportunity)

    def _orders_away(self) -> None:
        """An entry's (or exit's) legs have all started: the collector may run again, and an entry's
        bot-machine "begin_open" is fired now (``_enter``)."""
        self.collector.release()
        self._fire_entry_bot()

    def _fire_entry_bot(self) -> None:
        opp, self._entry_bot_fire = self._entry_bot_fire, None
        if opp is not None:
            self._fire_bot("begin_open", f"{opp.symbol} long {opp.long_venue} / short {opp.short_venue}")

    def _note_entry_denial(self, top: PlannedEntry | None) -> None:
        """Remember why the best candidate is not entered; log it once per change, not every pass."""
        if top is None:
            self.entry_denial, self._entry_denial_key = None, None
            return
        opp = top.opportunity
        details = "; ".join(f"{d.code.value} ({d.detail})" if d.detail else d.code.value
                            for d in top.decision.denials)
        self.entry_denial = f"{opp.symbol} long {opp.long_venue} / short {opp.short_venue} denied: {details}"
        key = (opp.symbol, top.decision.codes)
        if key != self._entry_denial_key:  # the details (ages, sizes) move every pass; the reasons rarely
            logger.bind(kind="entry_denied", symbol=opp.symbol).info(f"best candidate {self.entry_denial}")
        self._entry_denial_key = key

    async def _enter(self, opp: Opportunity) -> None:
        """Open one position for ``opp`` (shielded: an entry in flight always completes)."""
        assert self.engine is not None
        size = opp.size_base
        if size is None or size <= 0:
            return
        # The bot machine's "opening" is recorded after the orders leave (with the next bot write):
        # the position row and both order intents are persisted before sending (engine), and one
        # database round trip less sits between the decision and the orders.
        # The bot machine's own "begin_open" is fired in memory once the orders are away (or the
        # entry ended before that): nothing reads it in between, and it is off the orders' path.
        self._entry_bot_fire = opp
        now_spread = opp.current_spread_hourly if opp.current_spread_hourly is not None else opp.spread_hourly
        reason = (f"expected net {opp.expected_net:.4f} USD over {opp.horizon_hours}h "
                  f"(forecast spread {opp.spread_hourly:.8f}/h, current {now_spread:.8f}/h, costs {opp.costs:.4f})")
        with anyio.CancelScope(shield=True):
            try:
                pos = await self.engine.open_position(opp, size, reason)
            finally:
                self._fire_entry_bot()
                await self._persist_bot()
        self.entry_info[pos.position_id] = (opp.spread_hourly, self.clock.now_ms(), opp.notional_usd)
        if pos.state == PositionState.CLOSED or (
                pos.state not in (PositionState.MONITORING, PositionState.RESTING) and pos.is_flat):
            self.failed_entries[(opp.symbol, opp.long_venue, opp.short_venue)] = self.clock.now_ms()
        await self._sync_bot_state()

    async def reconcile_loop(self) -> None:
        pacer = self.pacers["reconcile"]
        while True:
            await pacer.wait()
            await self.reconcile_step()

    async def reconcile_step(self) -> None:
        assert self.engine is not None
        if self.reconcile_first.busy:  # a step already running (called from elsewhere): no priority
            await self._reconcile_step()
            return
        # Its many short turns (one per venue request) go before the strategy pass's fold slices
        # (bot.pacing.GoesFirst): otherwise each turn waits behind a slice, and at a high --speed
        # a reconciliation takes longer than its interval.
        with self.reconcile_first.running():
            await self._reconcile_step()

    async def _reconcile_step(self) -> None:
        assert self.engine is not None
        # A level's half-life is weeks: a restart after a crash loses at most minutes of it.
        await self.save_forecast(at_most_every_ms=FORECAST_SAVE_INTERVAL_MS)
        findings = await self.engine.reconcile()
        for finding in findings:
            await self.event(f"reconcile_{finding.kind}", "warning",
                             f"{finding.venue} {finding.symbol}: expected {finding.expected_base}, venue {finding.actual_base}")
        self._retire_closed()
        await self._sync_bot_state()

    def _retire_closed(self) -> None:
        """Closed, persisted positions leave memory (the database keeps them; see ``evict_closed``);
        failed-entry cooldowns that have run out are dropped."""
        assert self.engine is not None
        for position_id in self.engine.evict_closed():
            self.entry_info.pop(position_id, None)
        if len(self.failed_entries) > 64:
            oldest = self.clock.now_ms() - self.params.entry.pair_cooldown_ms
            self.failed_entries = {k: ts for k, ts in self.failed_entries.items() if ts >= oldest}

    async def status_loop(self) -> None:
        """The terminal status view (``bot.ops.terminal``): live when stdout is a terminal, else lines."""
        from bot.ops.terminal import StatusView

        self.status_view = StatusView(self, self.status_out, self.settings.bot.status_interval_seconds)
        await self.status_view.run()

    def end_status(self) -> None:
        """End the status view on its own line (before the final message is printed)."""
        if self.status_view is not None:
            self.status_view.close()

    def lag_text(self) -> str:
        """Each loop's last lag, and which loops cannot keep up (for the status line)."""
        lag = " ".join(f"{name}={pacer.last_lag_ms / 1000:g}s" for name, pacer in self.pacers.items())
        behind = [name for name, pacer in self.pacers.items() if pacer.behind]
        return f"lag {lag}" + (f" BEHIND: {','.join(behind)}" if behind else "")

    # ------------------------------------------------------------------ control
    async def poll_control(self) -> str | None:
        """Apply halt/resume/flatten requests written by ``python -m bot halt|resume|flatten``."""
        assert self.store is not None
        halt = await self.store.get_kv(CONTROL_HALT_KEY)
        manual_open = any(reason.startswith("manual") for reason in self.board.global_open())
        now = self.clock.now_ms()
        if halt and not manual_open:
            self._apply_board(self.board.kill(now, halt))
            await self.event("halt", "warning", f"manual halt: {halt}")
        elif not halt and manual_open:
            self._apply_board(self.board.resume(now, "manual resume"))
            await self.event("resume", "info", "manual halt cleared")
        await self._sync_bot_state()
        flatten = await self.store.get_kv(CONTROL_FLATTEN_KEY)
        if flatten:
            # A flatten also halts (until `resume`): otherwise the next strategy pass re-opens.
            reason = "manual: flatten requested"
            await self.store.set_kv(CONTROL_HALT_KEY, reason, now)
            await self.store.set_kv(CONTROL_FLATTEN_KEY, "", now)
            self._apply_board(self.board.kill(now, reason))
            await self._sync_bot_state()
            await self.event("manual_flatten", "warning", "manual flatten requested: halted until resume")
            return "flatten"
        return None

    def gate(self, intent: OrderIntent) -> GateDecision:
        state = TradingState.HALTED if self._stopping and intent.kind == "open" else self.board.trading_state()
        return gate_order(state, intent)

    async def flatten(self, reason: str) -> None:
        assert self.engine is not None
        if reason == "shutdown":
            self._stopping = True
        await self.engine.flatten_all(reason)
        await self._sync_bot_state()

    async def keep_hedged(self) -> dict[str, str]:
        """Shutdown with ``shutdown.on_signal = "keep"`` (``bot.keep``): stop entries, close only what
        is not hedged; returns exposure beyond the kept positions' legs (empty when as kept)."""
        from bot.keep import keep_hedged, unexpected_exposure

        self._stopping = True
        await keep_hedged(self)
        await self._sync_bot_state()
        return await unexpected_exposure(self)

    async def open_position_ids(self) -> list[str]:
        assert self.engine is not None
        return [pos.position_id for pos in self.engine.active_positions()]

    async def verify_flat(self) -> bool:
        return not await self.remaining_exposure()

    async def remaining_exposure(self) -> dict[str, str]:
        """Non-zero venue positions plus positions the bot still holds open."""
        assert self.executor is not None and self.engine is not None
        remaining: dict[str, str] = {}
        unreachable: set[str] = set()
        try:
            # Perp positions and the bot's spot coins (wallet above its baseline).
            sizes = await self.engine.venue_sizes()
        except Exception as exc:  # a venue could not be asked: that is not flat; which ones, and the rest
            logger.bind(event="exposure_unread").warning(f"venue positions not read: {exc!r}")
            try:
                sizes, unreachable = await self.engine.exposure_by_venue()
            except Exception as again:  # noqa: BLE001  (reported below as the answer)
                sizes, remaining["venues"] = {}, f"unreachable ({again})"
        for (venue, symbol), size in sorted(sizes.items()):
            if size != 0:
                remaining[f"{venue}:{symbol}"] = str(size)
        for venue in sorted(unreachable):
            remaining[f"venue {venue}"] = "unreachable"
        for pos in self.engine.active_positions():
            remaining[f"position:{pos.position_id}"] = pos.state.value
        return remaining

    async def event(self, kind: str, severity: str, message: str, entity_id: str | None = None,
                    details: dict | None = None) -> None:
        """Log and persist one event."""
        assert self.store is not None
        log_event(kind, severity, message, entity_id)
        await self.store.record_event(EventRecord(self.clock.now_ms(), kind, Severity(severity), message,
                                                  entity_id, details))

    async def bot_transition(self, trigger: str, reason: str) -> None:
        """Fire a bot-machine trigger if legal from the current state; persist and log it."""
        if self._fire_bot(trigger, reason):
            await self._persist_bot()

    def _fire_bot(self, trigger: str, reason: str) -> bool:
        """Fire a bot-machine trigger in memory if legal (``_persist_bot`` records it); True if fired."""
        if not getattr(self.bot, f"may_{trigger}")():
            return False
        try:
            getattr(self.bot, trigger)(reason=reason)
        except FsmError as exc:
            logger.bind(kind="bot_transition_refused").debug(str(exc))
            return False
        return True

    # ------------------------------------------------------------------ helpers
    async def _venue_sizes(self) -> dict[tuple[str, str], Decimal] | None:
        """The venues' own signed sizes (for the leg-missing and delta-drift exits); None if unknown."""
        assert self.executor is not None
        try:
            assert self.engine is not None
            return await self.account.venue_sizes()  # type: ignore[return-value]
        except Exception as exc:  # unknown sizes only disable those two rules for this pass
            logger.bind(kind="venue_sizes_unavailable").warning(f"venue positions unavailable: {exc!r}")
            return None

    def held_views(self, *, include_unhedged: bool = False,
                   venue_sizes: dict[tuple[str, str], Decimal | None] | None = None) -> list[HeldView]:
        """Views of hedged positions (for exits); with ``include_unhedged`` every active one (for
        the entry gates' exposure and one-position-per-symbol rule)."""
        assert self.engine is not None
        views = []
        for pos in self.engine.active_positions():
            if pos.state != PositionState.MONITORING and not include_unhedged:
                continue
            spread, entry_ts, notional = self.entry_info.get(pos.position_id, (ZERO, self.clock.now_ms(), ZERO))
            long_size = short_size = None
            if venue_sizes is not None:
                long_size = venue_sizes.get((pos.long_venue, pos.symbol), ZERO)
                short_size = venue_sizes.get((pos.short_venue, pos.symbol), ZERO)
                if long_size is None or short_size is None:  # one leg unknown: that position is not judged
                    long_size = short_size = None
            views.append(HeldView(
                position_id=pos.position_id,
                symbol=pos.symbol,
                long_venue=pos.long_venue,
                short_venue=pos.short_venue,
                size_base=max(pos.long_filled_base, pos.short_filled_base, pos.target_size_base),
                entry_spread_hourly=spread,
                entry_ts_ms=entry_ts,
                notional_usd=notional,
                accrued_funding_usd=self.engine.funding_usd.get(pos.position_id, ZERO),
                fees_paid_usd=self.engine.fees_usd.get(pos.position_id, ZERO),
                long_venue_size_base=long_size,
                short_venue_size_base=short_size,
            ))
        return views

    def _account_view(self) -> AccountView:
        assert self.executor is not None
        equity = self._equity_cache
        return AccountView(
            trading_state=self.board.trading_state(),
            equity_by_venue_usd=equity,
            venue_breakers_open=self.board.open_venues(),
            failed_entry_ts_ms=dict(self.failed_entries),
            orphaned_symbols=self.engine.orphaned_symbols() if self.engine is not None else frozenset(),
        )

    async def _record_equity(self, snapshot: MarketSnapshot) -> None:
        assert self.executor is not None
        try:
            balances = await self.account.balances_usd()
        except AccountUnknown as exc:  # stale or failed cached view: its refresh task logs the failures
            logger.bind(kind="equity_unknown").debug(f"equity unknown: {exc}")
            self._equity_cache = {}  # no equity known -> the margin gates deny entries
            return
        except Exception as exc:  # a venue that cannot report equity blocks entries via the gates
            logger.bind(kind="equity_unavailable").warning(f"balances unavailable: {exc}")
            self._equity_cache = {}  # no equity known -> the margin gates deny entries
            return
        self._equity_cache = dict(balances)
        total = sum(balances.values(), ZERO)
        self._apply_board(self.board.record_equity(total, snapshot.now_ts_ms))

    def _entry_info(self, record: PositionRecord) -> tuple[Decimal, int, Decimal]:
        return (record.entry_spread_hourly or ZERO, record.opened_at_ts_ms or record.created_at_ts_ms,
                record.notional_usd)

    def _on_unhedged_window(self, position_id: str, window_ms: float) -> None:
        self._apply_board(self.board.record_unhedged_window(int(window_ms), self.clock.now_ms(),
                                                            f"position {position_id}"))
        self._pending_events.append(("unhedged_window", "info",
                                     f"position {position_id} unhedged for {window_ms:.3f} ms", position_id,
                                     {"window_ms": f"{window_ms:.3f}"}))

    def _on_venue_result(self, venue: str, ok: bool) -> None:
        now = self.clock.now_ms()
        update = self.board.record_venue_success(venue, now) if ok else self.board.record_venue_failure(venue, now)
        self._apply_board(update)

    def _apply_board(self, update: BoardUpdate) -> None:
        self.board = update.board
        for ev in update.events:
            self._pending_events.append((ev.kind, "warning", f"{ev.breaker}: {ev.from_state} -> {ev.to_state} ({ev.reason})",
                                         None, {"breaker": ev.breaker, "from": str(ev.from_state), "to": str(ev.to_state)}))

    async def _flush_events(self) -> None:
        assert self.store is not None
        pending, self._pending_events = self._pending_events, []
        for kind, severity, message, entity_id, details in pending:
            await self.event(kind, severity, message, entity_id, details)

    async def _sync_bot_state(self) -> None:
        """Move the bot machine to match the breakers and positions."""
        await self._flush_events()
        if self.bot.state in (BotState.STOPPING, BotState.STOPPED):
            return
        trading = self.board.trading_state()
        if trading is not TradingState.ACTIVE or self._stopping:
            if self.bot.state is not BotState.HALTED:
                await self.bot_transition("halt", "; ".join(self.board.global_open()) or trading.value)
            return
        if self.bot.state is BotState.HALTED:
            await self.bot_transition("resume", "breakers closed")
        assert self.engine is not None
        open_count = len(self.engine.active_positions())
        target = "monitor" if open_count >= self.settings.strategy.max_positions else "scan"
        if (target == "monitor" and self.bot.state is not BotState.MONITORING) or (
                target == "scan" and self.bot.state is not BotState.SCANNING):
            await self.bot_transition(target, f"{open_count} open of {self.settings.strategy.max_positions}")

    async def _persist_bot(self) -> None:
        assert self.store is not None
        now = self.clock.now_ms()
        records = [r.stamped(now) for r in self.bot.drain_transitions()]
        store = self.store

        def write(s) -> None:
            s.record_transitions(records)
            s.set_bot_state(self.bot.state.value, now)

        await store.run(write)
        TradingEngine._log_transitions(records)
