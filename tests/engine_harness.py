"""Shared fixtures for the engine tests: a TradingEngine over a PaperExecutor on books we control.

* ``DeepBooks``: a tiny ``BookSource`` with deep, symmetric books (price 100, tick 0.01, lot 0.1,
  ten levels of 100 base a side), one per (venue, symbol); tests can replace any book.
* ``Harness``: the engine, the paper executor, the bot's ``AsyncStorage`` and the venues'
  ``VenueStore`` on files under a tmp dir, a ``ManualClock`` and a gate that allows everything.
* ``audit_files``: money-safety invariants read straight from the two SQLite files.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import anyio
import anyio.lowlevel

from bot.core.clock import ManualClock
from bot.core.domain import (
    ZERO,
    BookLevel,
    ExecutionMode,
    FeeSchedule,
    Instrument,
    Opportunity,
    OrderBook,
    is_spot,
)
from bot.engine import EngineConfig, TradingEngine
from machines.position import PositionState
from paper.executor import PaperExecutor
from paper.fault_injection import FaultPlan
from paper.venue_store import VenueStore, venue_store_path_for
from risk.trading_state import GateDecision, GateReason, OrderIntent
from storage import AsyncStorage

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VENUES = ("alpha", "beta", "gamma")
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
FEES = {v: FeeSchedule(maker_bps=Decimal("1"), taker_bps=Decimal("5")) for v in VENUES}
MID = Decimal("100")
TICK = Decimal("0.01")
LOT = Decimal("0.1")
LEVEL_SIZE = Decimal("100")


def deep_book(venue: str, symbol: str, mid: Decimal = MID, ts_ms: int = T0_MS, levels: int = 10,
              level_size: Decimal = LEVEL_SIZE) -> OrderBook:
    """Bids at mid-0.01, -0.02, ...; asks at mid+0.01, +0.02, ...; ``level_size`` base each."""
    return OrderBook(
        venue=venue,
        symbol=symbol,
        bids=tuple(BookLevel(mid - TICK * (i + 1), level_size) for i in range(levels)),
        asks=tuple(BookLevel(mid + TICK * (i + 1), level_size) for i in range(levels)),
        ts_ms=ts_ms,
    )


def instrument(venue: str, symbol: str) -> Instrument:
    return Instrument(
        venue=venue, symbol=symbol, venue_symbol=f"{symbol}-PERP", tick_size=TICK, lot_size_base=LOT,
        min_size_base=LOT, funding_interval_hours=Decimal(1),
    )


class DeepBooks:
    """In-test ``BookSource``: every venue/symbol has a deep book unless a test replaces it."""

    def __init__(self, venues: tuple[str, ...] = VENUES, symbols: tuple[str, ...] = SYMBOLS) -> None:
        self.books: dict[tuple[str, str], OrderBook | None] = {
            (v, s): deep_book(v, s) for v in venues for s in symbols
        }
        self.instruments = {(v, s): instrument(v, s) for v in venues for s in symbols}

    def set(self, book: OrderBook | None, venue: str, symbol: str) -> None:
        self.books[(venue, symbol)] = book

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self.books.get((venue, symbol))

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self.instruments.get((venue, symbol))


def allow_all(_intent: OrderIntent) -> GateDecision:
    return GateDecision(True, GateReason.ACTIVE)


def opportunity(symbol: str, long_venue: str = "alpha", short_venue: str = "beta",
                notional_usd: Decimal = Decimal(100)) -> Opportunity:
    """A plausible opportunity; the engine only uses its identity and records the rest."""
    return Opportunity(
        symbol=symbol, long_venue=long_venue, short_venue=short_venue,
        long_rate=Decimal("0.0001"), long_interval_hours=Decimal(1),
        short_rate=Decimal("0.0003"), short_interval_hours=Decimal(1),
        spread_hourly=Decimal("0.0002"), apr=Decimal("1.752"), costs=Decimal("0.2"),
        expected_net=Decimal("1.24"), breakeven_hours=Decimal(10), notional_usd=notional_usd,
        horizon_hours=Decimal(72), fees_usd=Decimal("0.2"), slippage_usd=ZERO, basis_usd=ZERO,
        long_price=MID, short_price=MID, size_base=notional_usd / MID,
    )


@dataclass
class Harness:
    engine: TradingEngine
    executor: PaperExecutor
    store: AsyncStorage
    venue_store: VenueStore
    books: DeepBooks
    clock: ManualClock
    db_path: Path
    windows_ms: list[float] = field(default_factory=list)

    @property
    def venue_path(self) -> Path:
        return venue_store_path_for(self.db_path)

    async def aclose(self) -> None:
        await self.store.aclose()
        self.venue_store.close()


FAST_CONFIG = EngineConfig(leg_timeout_s=5.0, repair_attempts=3, lookup_attempts=2, lookup_backoff_s=0.0)
# Maker-taker entries: the maker leg rests for up to 30 clock seconds.
MAKER_CONFIG = replace(FAST_CONFIG, execution=ExecutionMode.MAKER_TAKER, maker_timeout_s=30.0)


class YieldingLatency:
    """An executor ``sleep`` that takes no wall time but yields to the event loop 0..3 times
    (seeded), so concurrent tasks interleave inside every venue request as they would with real
    latency: before the venue acts, and between the venue acting and the caller seeing it."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    async def __call__(self, _seconds: float) -> None:
        for _ in range(self._rng.randint(0, 3)):
            await anyio.lowlevel.checkpoint()


def make_executor(books: DeepBooks, venue_store: VenueStore, clock: ManualClock,
                  faults: FaultPlan | None = None, interleave_seed: int | None = None) -> PaperExecutor:
    if interleave_seed is None:
        return PaperExecutor(books, FEES, store=venue_store, latency_s=0.0, clock_now_ms=clock.now_ms, faults=faults)
    return PaperExecutor(books, FEES, store=venue_store, latency_s=0.001, clock_now_ms=clock.now_ms, faults=faults,
                         sleep=YieldingLatency(interleave_seed))


async def make_harness(tmp_path: Path, *, faults: FaultPlan | None = None, config: EngineConfig = FAST_CONFIG,
                       books: DeepBooks | None = None, clock: ManualClock | None = None,
                       db_name: str = "bot.sqlite", interleave_seed: int | None = None) -> Harness:
    """A fresh engine (or one re-opened over existing files in ``tmp_path``: a restart)."""
    db_path = tmp_path / db_name
    books = books or DeepBooks()
    clock = clock or ManualClock(T0_MS)
    store = await AsyncStorage.open(db_path)
    venue_store = VenueStore.open(venue_store_path_for(db_path))
    executor = make_executor(books, venue_store, clock, faults, interleave_seed)
    windows: list[float] = []
    engine = TradingEngine(
        executor=executor, store=store, clock=clock, config=config, book=books.book,
        instrument=books.instrument, gate=allow_all,
        on_unhedged_window=lambda _pid, ms: windows.append(ms), known_venues=VENUES, fees=FEES.get,
    )
    return Harness(engine, executor, store, venue_store, books, clock, db_path, windows)


def venue_exposure(executor: PaperExecutor) -> dict[tuple[str, str], Decimal]:
    """The paper venues' non-zero positions, read from their committed state (no request, no faults)."""
    return {(p.venue, p.symbol): p.size_base for p in executor._positions.values() if p.size_base != 0}


def assert_never_monitoring_unhedged(engine: TradingEngine) -> None:
    """The core invariant: a position in monitoring has two equal, non-zero legs."""
    for pos in engine.positions.values():
        if pos.state == PositionState.MONITORING.value:
            assert pos.long_filled_base == pos.short_filled_base > 0, pos


# ---------------------------------------------------------------------- audit of the two files
@dataclass
class FileAudit:
    """Money-safety facts read from the bot database and the paper venues' file."""

    venue_positions: dict[tuple[str, str], Decimal]  # non-zero only
    duplicate_client_ids: list[str]
    overfilled_orders: list[str]  # venue fills beyond what the bot asked for, per client order id
    unknown_venue_orders: list[str]  # executed at a venue but never intended by the bot (or wrong venue)
    duplicate_open_legs: list[tuple[str, str]]  # (position, leg) with more than one open order
    unowned_exposure: list[str]  # venue exposure no non-closed position accounts for
    leg_mismatches: list[str]  # non-closed position legs that disagree with the venue
    closed_not_flat: list[str]  # closed positions whose own fills do not net to zero per venue
    unrecorded_fills: list[str]  # venue fills of the bot's orders missing from the bot database
    order_fill_mismatch: list[str]  # an order's recorded filled size differs from its recorded fills
    states: dict[str, int]

    @property
    def problems(self) -> dict[str, list]:
        return {name: value for name, value in (
            ("duplicate_client_ids", self.duplicate_client_ids),
            ("overfilled_orders", self.overfilled_orders),
            ("unknown_venue_orders", self.unknown_venue_orders),
            ("duplicate_open_legs", self.duplicate_open_legs),
            ("unowned_exposure", self.unowned_exposure),
            ("leg_mismatches", self.leg_mismatches),
            ("closed_not_flat", self.closed_not_flat),
            ("order_fill_mismatch", self.order_fill_mismatch),
        ) if value}


def audit_files(db_path: Path, *, allow_unrecorded_open: bool = True, venue_path: Path | None = None) -> FileAudit:
    """Read both SQLite files (read-only) and check the money-safety invariants.

    Everything the venues executed must be an order the bot persisted first (orphan flattens
    included), on the same venue and symbol, never filled beyond its size. ``venue_path``: the
    venues' file (default: the paper venues' file beside ``db_path``; the live audit passes a
    copy of the emulator's file translated to our ids, tests/live_audit.py).
    """
    venue_path = venue_path if venue_path is not None else venue_store_path_for(db_path)
    bot = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True)
    ven = sqlite3.connect(f"{venue_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        orders = {
            r[0]: r for r in bot.execute(
                "SELECT client_order_id, position_id, venue, symbol, purpose, leg, size_base, status, filled_base"
                " FROM orders")
        }
        recorded_fill_base: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for cid, size in bot.execute("SELECT client_order_id, size_base FROM fills"):
            recorded_fill_base[cid] += Decimal(size)
        order_fill_mismatch = [
            f"{cid} ({o[4]}, {o[7]}): filled_base {o[8]}, fills {recorded_fill_base.get(cid, ZERO)}"
            for cid, o in orders.items() if Decimal(o[8]) != recorded_fill_base.get(cid, ZERO)
        ]
        dup_cids = [r[0] for r in bot.execute(
            "SELECT client_order_id FROM orders GROUP BY client_order_id HAVING COUNT(*) > 1")]
        dup_open = [(r[0], r[1]) for r in bot.execute(
            "SELECT position_id, leg FROM orders WHERE purpose = 'open' GROUP BY position_id, leg HAVING COUNT(*) > 1")]
        positions = {r[0]: r[:5] for r in bot.execute(
            "SELECT id, symbol, long_venue, short_venue, state, long_size_base, short_size_base FROM positions")}
        recorded_legs = {r[0]: (Decimal(r[1]), Decimal(r[2])) for r in bot.execute(
            "SELECT id, long_size_base, short_size_base FROM positions")}
        states: dict[str, int] = defaultdict(int)
        for p in positions.values():
            states[p[4]] += 1
        bot_fills = {(r[0], r[1]) for r in bot.execute("SELECT venue, trade_id FROM fills")}

        venue_orders = list(ven.execute("SELECT venue, client_order_id, symbol, reduce_only FROM venue_orders"))
        fills_by_cid: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        signed_by_pos_venue: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        unrecorded: list[str] = []
        for venue, trade_id, cid, side, size, fee_base in ven.execute(
                "SELECT venue, trade_id, client_order_id, side, size_base, fee_base FROM venue_fills"):
            fills_by_cid[(venue, cid)] += Decimal(size)
            order = orders.get(cid)
            if order is not None:
                # What moved: a base-coin fee (spot buys) never reached the wallet.
                signed = (Decimal(size) if side == "buy" else -Decimal(size)) - Decimal(fee_base)
                signed_by_pos_venue[(order[1], venue)] += signed
                if (venue, trade_id) not in bot_fills:
                    unrecorded.append(f"{venue}/{trade_id} ({cid})")

        overfilled, unknown = [], []
        for venue, cid, symbol, _reduce_only in venue_orders:
            order = orders.get(cid)
            if order is None:
                unknown.append(f"{venue}/{cid}")
                continue
            if (order[2], order[3]) != (venue, symbol):
                unknown.append(f"{venue}/{cid} (intended for {order[2]}/{order[3]})")
            if fills_by_cid[(venue, cid)] > Decimal(order[6]):
                overfilled.append(f"{cid}: filled {fills_by_cid[(venue, cid)]} > asked {order[6]}")

        kv = dict(bot.execute("SELECT key, value FROM kv"))
        venue_pos = {}
        for venue, symbol, size in ven.execute("SELECT venue, symbol, size_base FROM venue_positions"):
            held = Decimal(size)
            if is_spot(venue):
                # Spot: the bot's coins are the wallet above its recorded baseline (none: not the bot's).
                baseline = kv.get(f"spot_baseline:{venue}:{symbol}")
                held = held - Decimal(baseline) if baseline is not None else ZERO
            if held != 0:
                venue_pos[(venue, symbol)] = held
        expected: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        mismatches: list[str] = []
        closed_not_flat: list[str] = []
        for pid, symbol, long_venue, short_venue, state in positions.values():
            long_net = signed_by_pos_venue.get((pid, long_venue), ZERO) - Decimal(
                kv.get(f"spot_dust:{pid}:{long_venue}", "0"))  # sub-lot spot dust released to the user
            short_net = signed_by_pos_venue.get((pid, short_venue), ZERO)
            if state == "closed":
                if long_net != 0 or short_net != 0:
                    closed_not_flat.append(f"{pid}: {long_venue} {long_net}, {short_venue} {short_net}")
                continue
            expected[(long_venue, symbol)] += long_net
            expected[(short_venue, symbol)] += short_net
            if recorded_legs[pid] != (long_net, -short_net):
                mismatches.append(f"{pid} ({state}): recorded legs {recorded_legs[pid]}, "
                                  f"venue fills {long_net} / {-short_net}")
        for key in sorted(set(expected) | set(venue_pos)):
            want, have = expected.get(key, ZERO), venue_pos.get(key, ZERO)
            if want != have:
                owners = [p[0] for p in positions.values()
                          if p[4] != "closed" and p[1] == key[1] and key[0] in (p[2], p[3])]
                if owners:
                    mismatches.append(f"{key}: positions {owners} hold {want}, venue {have}")
                else:
                    mismatches.append(f"{key}: no open position, venue {have}")
        unowned = [f"{k}: {v}" for k, v in venue_pos.items()
                   if not any(p[4] != "closed" and p[1] == k[1] and k[0] in (p[2], p[3]) for p in positions.values())]
        return FileAudit(
            venue_positions=venue_pos, duplicate_client_ids=dup_cids, overfilled_orders=overfilled,
            unknown_venue_orders=unknown, duplicate_open_legs=dup_open, unowned_exposure=unowned,
            leg_mismatches=mismatches, closed_not_flat=closed_not_flat, unrecorded_fills=unrecorded,
            order_fill_mismatch=order_fill_mismatch, states=dict(states),
        )
    finally:
        bot.close()
        ven.close()


# ---------------------------------------------------------------------- scripted venue behaviour
class Crash(BaseException):
    """Stands in for kill -9 in-process: nothing after it runs (not an Exception, so never caught)."""


PURPOSE_LETTERS = {"o": "open", "c": "close", "r": "repair", "u": "unwind", "f": "flatten"}


def shift_book(books: DeepBooks, venue: str, symbol: str, mid: Decimal, ts_ms: int = T0_MS,
               level_size: Decimal = LEVEL_SIZE) -> None:
    """Move one venue's book to a new mid (a resting maker order fills when the market trades through it)."""
    books.set(deep_book(venue, symbol, mid=mid, ts_ms=ts_ms, level_size=level_size), venue, symbol)


def purpose_of(client_order_id: str) -> str:
    """The purpose encoded in a client order id (see storage.ids)."""
    return PURPOSE_LETTERS[client_order_id[22]]


@dataclass
class Rule:
    venue: str | None
    purpose: str | None
    action: str  # reject | lose | ack_lost | ack_lost_down | crash_before | crash_after | hold_before | hold_after
    times: int

    def matches(self, req) -> bool:
        return (self.times != 0 and (self.venue is None or req.venue == self.venue)
                and (self.purpose is None or purpose_of(req.client_order_id) == self.purpose))


class ScriptedExecutor:
    """Wraps a PaperExecutor; ``on(...)`` scripts what happens to matching ``place_order`` calls.

    Actions: ``reject`` (OrderRejected, nothing executed), ``lose`` (TemporaryVenueError, nothing
    executed), ``ack_lost`` (executed, then TemporaryVenueError: the answer is lost),
    ``ack_lost_down`` (as ack_lost and the venue goes down for 60 s, so lookups fail too),
    ``crash_before`` / ``crash_after`` (raise ``Crash`` before / after the venue executes),
    ``hold_before`` / ``hold_after`` (park the request before / after the venue executes until
    ``release`` is set: an order in flight, for races with reconciliation).
    ``times=-1`` means every matching call.
    """

    def __init__(self, inner: PaperExecutor) -> None:
        self.inner = inner
        self.rules: list[Rule] = []
        self.placed: list[str] = []
        self.holding = anyio.Event()  # set while a ``hold_*`` request is parked
        self.release = anyio.Event()  # set it to let parked requests continue

    def on(self, action: str, *, venue: str | None = None, purpose: str | None = None, times: int = 1) -> None:
        self.rules.append(Rule(venue, purpose, action, times))

    async def place_order(self, req):
        from adapters.errors import OrderRejected, TemporaryVenueError

        self.placed.append(req.client_order_id)
        rule = next((r for r in self.rules if r.matches(req)), None)
        if rule is None:
            return await self.inner.place_order(req)
        rule.times -= 1
        if rule.action == "reject":
            raise OrderRejected(req.venue, "scripted reject")
        if rule.action == "lose":
            raise TemporaryVenueError(req.venue, "scripted: request lost")
        if rule.action == "crash_before":
            raise Crash(f"crash before {req.client_order_id}")
        if rule.action == "hold_before":
            self.holding.set()
            await self.release.wait()
            return await self.inner.place_order(req)
        if rule.action == "hold_after":
            report = await self.inner.place_order(req)
            self.holding.set()
            await self.release.wait()
            return report
        await self.inner.place_order(req)
        if rule.action == "crash_after":
            raise Crash(f"crash after {req.client_order_id}")
        if rule.action == "ack_lost_down":
            self.inner.down_for(req.venue, 60)
        raise TemporaryVenueError(req.venue, "scripted: answer lost after execution")

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
