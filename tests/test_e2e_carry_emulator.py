"""A carry position (long Bybit spot / short Bybit linear perp) on the local venue emulator, end to end
through the real engine and the live adapters (unmodified pybit on the real wire, signatures checked):
opened, funding received on the perp leg only, closed, flat (perp position 0, the spot wallet back at
its baseline within dust, the user's own coins untouched), and the bot's records agree with the
emulator's own (fills by trade id, funding by payment).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from decimal import Decimal

import anyio
import pytest
from engine_harness import FAST_CONFIG, allow_all, opportunity

from adapters.registry import LiveVenueConfig, build_live_session
from bot.core.clock import ManualClock
from bot.core.domain import exchange_of
from bot.engine import TradingEngine
from machines.position import PositionState
from storage import AsyncStorage

emulator = pytest.importorskip("paper.emulator", reason="the venue emulator is not in this checkout")
pytestmark = pytest.mark.anyio

D = Decimal
PERP = "bybit"
USER_BTC = D("0.3")  # the account's own coins: never the bot's, never sold
HOUR_MS = 3_600_000


def _rows(tmp_path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "bot.sqlite") as conn:
        return conn.execute(sql).fetchall()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


ENV = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"), "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET")}


@pytest.mark.parametrize("spot_market", ["bybit:spot", "binanceusdm:spot"])
async def test_carry_on_the_emulator_opens_collects_perp_funding_only_and_closes_flat(tmp_path, spot_market) -> None:
    """One venue (Bybit spot + Bybit perp on one unified account) and across venues (Binance spot via ccxt,
    Bybit perp via pybit)."""
    SPOT = spot_market  # the market under test
    spot_exchange = exchange_of(SPOT)
    exchanges = sorted({PERP, spot_exchange})
    start = (_wall_ms() // HOUR_MS) * HOUR_MS + 60_000  # one minute past an hour: the next boundary is ahead
    with emulator.start_emulator(exchanges, state_path=tmp_path / "venues.sqlite", seed=11, manual_clock=True,
                                 start_ts_ms=start, step_seconds=60,
                                 spot_starting_coins={spot_exchange: {"BTC": USER_BTC}}) as emu:
        emu.set_interval("bybit", "BTC", 1)  # hourly funding on the perp, so one hour settles once
        env = {}
        for name in exchanges:
            key, secret = ENV[name]
            env.update({key: emu.credentials[name].key, secret: emu.credentials[name].secret})
        configs = {PERP: LiveVenueConfig(base_url=emu.base_urls[PERP]),
                   SPOT: LiveVenueConfig(base_url=emu.base_urls[spot_exchange])}
        session = await build_live_session(configs, env, symbols=["BTC"], max_slippage_bps=D(50),
                                           max_book_age_ms=None)
        store = await AsyncStorage.open(tmp_path / "bot.sqlite")
        try:
            assert await session.setup()
            for venue in session.venues:
                await venue.market.resync_rest()
            clock = ManualClock(start)
            engine = TradingEngine(executor=session.executor, store=store, clock=clock, config=FAST_CONFIG,
                                   book=session.feed.book, instrument=session.feed.instrument, gate=allow_all,
                                   known_venues=(PERP, SPOT), fees=session.feed.fee_schedules().get)
            spot_book, perp_book = session.feed.book(SPOT, "BTC"), session.feed.book(PERP, "BTC")
            assert spot_book.venue == SPOT
            if spot_exchange == PERP:
                assert spot_book.best_ask < perp_book.best_ask  # the emulator's spot sits below its perp
            size = D("0.05")  # ~5,000 USD
            opp = replace(opportunity("BTC", long_venue=SPOT, short_venue=PERP), long_rate=D(0), size_base=size,
                          long_price=spot_book.best_ask, short_price=perp_book.best_bid)

            pos = await engine.open_position(opp, size, "carry on the emulator")
            assert pos.state == PositionState.MONITORING.value
            assert engine.spot_baselines[(SPOT, "BTC")] == USER_BTC  # the wallet before the bot bought
            wallet = (await session.executor.spot_wallet_base(SPOT))["BTC"]
            (short,) = await session.executor.positions(PERP)
            held = wallet - USER_BTC
            assert held == pos.long_filled_base > 0  # net of the base-coin fee
            assert short.size_base == -pos.short_filled_base
            assert abs(held + short.size_base) < D("0.001")  # hedged within one perp lot
            spot_fills = emu.core.spot[spot_exchange].fills
            assert spot_fills and all(f.fee_coin == "BTC" for f in spot_fills)  # buys paid their fee in BTC
            assert held == sum(f.size_base - f.fee for f in spot_fills)

            # One hourly settlement on the venue: the perp short is paid (or pays), the spot leg never.
            emu.advance_ms(HOUR_MS)
            clock.advance(HOUR_MS / 1000)
            for venue in session.venues:  # the books of the new hour (a running feed streams them)
                await venue.market.resync_rest()
            await engine.reconcile()
            venue_funding = emu.core.executor.venue_funding("bybit")
            assert len(venue_funding) == 1 and venue_funding[0].position_size_base == short.size_base
            recorded = _rows(tmp_path, "SELECT venue, amount_usd FROM funding_payments")
            assert [(v, D(a)) for v, a in recorded] == [("bybit", venue_funding[0].amount_usd)]
            assert engine.funding_usd[pos.position_id] == venue_funding[0].amount_usd

            assert await engine.close_position(pos, "test_exit"), _rows(tmp_path, "SELECT kind, message FROM events")
            assert pos.state == PositionState.CLOSED.value
            assert await session.executor.positions(PERP) == []
            after = (await session.executor.spot_wallet_base(SPOT))["BTC"]
            spot_lot = session.feed.instrument(SPOT, "BTC").lot_size_base
            assert USER_BTC <= after < USER_BTC + spot_lot  # back at the baseline within dust
            assert not await engine.venue_sizes()

            # The bot's fills are the emulator's, trade id for trade id, fees included.
            bot_fills = _rows(tmp_path, "SELECT trade_id, fee_base FROM fills")
            # Binance publishes numeric trade ids (the ledger's sequence number); Bybit its execId
            venue_trades = {(str(f.seq) if spot_exchange == "binanceusdm" else f.trade_id): f
                            for f in emu.core.spot[spot_exchange].fills}
            venue_trades.update({f.trade_id: f for f in emu.core.executor.venue_fills("bybit")})
            assert {t for t, _ in bot_fills} == set(venue_trades)
            spot_fee_base = sum((f.fee for f in emu.core.spot[spot_exchange].fills if f.fee_coin == "BTC"), D(0))
            assert sum((D(fb) for _, fb in bot_fills), D(0)) == spot_fee_base
            totals = await store.run(lambda s: s.position_totals(pos.position_id))
            assert totals.is_flat and totals.funding_usd == venue_funding[0].amount_usd
            states = _rows(tmp_path, "SELECT state FROM positions")
            assert states == [("closed",)]
        finally:
            await store.aclose()
            await session.close()


async def _naked_base(session, engine, spot: str) -> Decimal:
    """The bot's spot holding (wallet above baseline) plus its perp position: 0 when hedged or flat."""
    wallet = (await session.executor.spot_wallet_base(spot)).get("BTC", D(0))
    held = wallet - engine.spot_baselines.get((spot, "BTC"), wallet)
    perp = sum((p.size_base for p in await session.executor.positions(PERP) if p.symbol == "BTC"), D(0))
    return held + perp


@pytest.mark.parametrize("phase", ["entry", "exit"])
@pytest.mark.parametrize("fault", ["drop_after_execute", "http_5xx", "duplicate_client_id"])
@pytest.mark.parametrize("spot", ["bybit:spot", "binanceusdm:spot"])
async def test_spot_order_faults_on_the_wire_leave_no_naked_leg(tmp_path, spot: str, fault: str, phase: str) -> None:
    """The emulator's faults on a carry entry or exit (executed but unanswered, a 5xx that executed
    nothing, a duplicate-id answer): the engine ends hedged or flat, never naked, and a close ends flat
    with the wallet back at the user's coins (within one spot lot). With Binance spot the fault hits the
    SPOT order exactly (only it goes to Binance); on one Bybit account it hits whichever leg is first."""
    spot_exchange = exchange_of(spot)
    exchanges = sorted({PERP, spot_exchange})
    start = (_wall_ms() // HOUR_MS) * HOUR_MS + 60_000
    with emulator.start_emulator(exchanges, state_path=tmp_path / "venues.sqlite", seed=13, manual_clock=True,
                                 start_ts_ms=start, step_seconds=60,
                                 spot_starting_coins={spot_exchange: {"BTC": USER_BTC}}) as emu:
        env = {}
        for name in exchanges:
            key, secret = ENV[name]
            env.update({key: emu.credentials[name].key, secret: emu.credentials[name].secret})
        configs = {PERP: LiveVenueConfig(base_url=emu.base_urls[PERP]),
                   spot: LiveVenueConfig(base_url=emu.base_urls[spot_exchange])}
        session = await build_live_session(configs, env, symbols=["BTC"], max_slippage_bps=D(50),
                                           max_book_age_ms=None)
        store = await AsyncStorage.open(tmp_path / "bot.sqlite")
        try:
            for venue in session.venues:
                await venue.market.resync_rest()
            engine = TradingEngine(executor=session.executor, store=store, clock=ManualClock(start),
                                   config=FAST_CONFIG, book=session.feed.book, instrument=session.feed.instrument,
                                   gate=allow_all, known_venues=(PERP, spot), fees=session.feed.fee_schedules().get)
            size = D("0.02")
            opp = replace(opportunity("BTC", long_venue=spot, short_venue=PERP), long_rate=D(0), size_base=size)
            perp_lot = session.feed.instrument(PERP, "BTC").lot_size_base
            spot_lot = session.feed.instrument(spot, "BTC").lot_size_base
            if phase == "entry":
                emu.faults.arm(fault, venue=spot_exchange, scope="order")
            pos = await engine.open_position(opp, size, f"carry with {fault} on {phase}")
            # Unknown outcomes settle through reconciliation (look-ups by client id); "not found" means
            # "never executed" only after the request's venue-side expiry (recv window + skew, wall time).
            deadline = time.monotonic() + 60
            while pos.state not in (PositionState.MONITORING.value, PositionState.CLOSED.value) \
                    and time.monotonic() < deadline:
                await anyio.sleep(0.5)
                await engine.reconcile()
            assert pos.state in (PositionState.MONITORING.value, PositionState.CLOSED.value), pos.state
            assert abs(await _naked_base(session, engine, spot)) < perp_lot

            if phase == "exit":
                emu.faults.arm(fault, venue=spot_exchange, scope="order")
            closed = await engine.close_position(pos, "test_exit") if pos.state != PositionState.CLOSED.value else True
            deadline = time.monotonic() + 60
            while not (closed and pos.state == PositionState.CLOSED.value) and time.monotonic() < deadline:
                await anyio.sleep(0.5)
                await engine.reconcile()
                closed = pos.state == PositionState.CLOSED.value
            assert pos.state == PositionState.CLOSED.value
            assert await session.executor.positions(PERP) == []
            wallet = (await session.executor.spot_wallet_base(spot))["BTC"]
            assert USER_BTC <= wallet < USER_BTC + spot_lot  # the user's coins untouched, the bot's sold
            # Every execution at the venue is one the bot recorded (nothing executed behind its back, no
            # order executed twice): the venue's trades are the bot's fills, trade id for trade id.
            venue_trades = {str(f.seq) if spot_exchange == "binanceusdm" else f.trade_id
                            for f in emu.core.spot[spot_exchange].fills}
            venue_trades |= {f.trade_id for f in emu.core.executor.venue_fills("bybit")}
            assert {t for (t,) in _rows(tmp_path, "SELECT trade_id FROM fills")} == venue_trades
        finally:
            await store.aclose()
            await session.close()
