"""``python -m bot --paper`` / ``--live``: build the application and hand it to the supervisor."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import anyio

from bot.core.clock import parse_iso_utc, utc_now_ms
from bot.errors import UserInputError
from bot.logging_setup import configure_logging
from bot.settings import Settings
from bot.startup_checks import claim_database


def run_paper(args: argparse.Namespace, settings: Settings) -> int:
    """Trade on the built-in simulated market until a signal or ``--duration``."""
    from bot.app import Application
    from bot.ops.surface import OperatorSurface
    from bot.supervisor import Supervisor
    from bot.wiring import PaperOptions, paper_wiring

    sim = settings.sim
    speed = float(args.speed) if args.speed is not None else sim.speed
    seed = args.seed if args.seed is not None else sim.seed
    db_path = Path(args.db) if args.db is not None else settings.bot.paper_db_path
    if db_path.resolve() == settings.bot.live_db_path.resolve():
        raise UserInputError(f"paper database {db_path} is the live database (bot.live_db_path); "
                             "paper runs must use another file (--db or bot.paper_db_path)")
    lock = claim_database(db_path)  # one bot per database, our own healthy file (else exit 2)
    _check_writable(db_path)
    start_ts_ms = utc_now_ms() if sim.start == "now" else parse_iso_utc(sim.start)
    # A sped-up run may have simulated hours past the wall clock: a restart resumes after the last
    # recorded instant, so time never runs backwards (no funding instant is settled twice).
    start_ts_ms = max(start_ts_ms, latest_recorded_ts_ms(db_path) + 1)
    options = PaperOptions(seed=seed, speed=speed, db_path=db_path, start_ts_ms=start_ts_ms)
    surface = OperatorSurface(settings)  # web, metrics, notifications (bad URLs/token: exit 2 here)
    try:
        app = Application(settings, surface.wrap(paper_wiring(settings, options)))
    except ValueError as exc:  # the simulated market refuses an impossible configuration
        raise UserInputError(f"setting 'sim': {exc}") from None
    surface.attach(app)
    _configure_logging(settings)
    duration = float(args.duration) if args.duration is not None else None
    supervisor = Supervisor(app=app, duration_wall_s=duration, deadline_wall_s=settings.shutdown.deadline_seconds,
                            on_signal=settings.shutdown.on_signal, surface=surface)
    print(f"paper trading on the simulated market (seed {seed}, speed x{speed:g}); database {db_path}; "
          f"logs {settings.bot.log_path}. Ctrl-C or SIGTERM "
          + ("flattens and stops." if settings.shutdown.on_signal == "flatten"
             else "stops, keeping hedged positions open (shutdown.on_signal = keep)."), file=sys.stderr)
    with lock:
        return anyio.run(supervisor.run)


def _configure_logging(settings: Settings) -> None:
    """``configure_logging`` on ``bot.log_path``; a path that cannot be written is a one-line user error."""
    try:
        configure_logging(settings.bot.log_path)
    except OSError as exc:
        raise UserInputError(f"setting 'bot.log_path': cannot write {settings.bot.log_path}: "
                             f"{exc.strerror or exc} (point it at a writable file)") from None


def _check_writable(db_path: Path) -> None:
    """Fail early, as a one-line user error, when the database cannot be created or opened."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(db_path).close()
    except (OSError, sqlite3.Error) as exc:
        raise UserInputError(f"cannot open database {db_path}: {exc} (pass a writable path to --db)") from None


def latest_recorded_ts_ms(db_path: Path) -> int:
    """The latest timestamp in the bot's database and the paper venues' database (0 when new)."""
    from paper.venue_store import venue_store_path_for

    queries = {
        db_path: ("transitions", "events", "fills", "funding_payments"),
        venue_store_path_for(db_path): ("venue_fills", "venue_funding"),
    }
    latest = 0
    for path, tables in queries.items():
        if not path.exists():
            continue
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for table in tables:
                try:
                    row = conn.execute(f"SELECT MAX(ts_ms) FROM {table}").fetchone()
                except sqlite3.OperationalError:  # table not created yet by this version
                    continue
                if row and row[0] is not None:
                    latest = max(latest, int(row[0]))
        finally:
            conn.close()
    return latest


def _unreachable_at_start(exc: BaseException) -> str:
    """The one line for a venue that failed a ``--live`` start-up request (before any order): one
    that did not answer, or one that refused (a key the venue does not know, a leverage it does not
    take)."""
    from adapters.errors import TemporaryVenueError

    if isinstance(exc, TemporaryVenueError):
        return (f"a venue did not answer during start-up: {exc} (no order was sent; check [venues.NAME] base_url, "
                "the network and the venue's status, then start again)")
    return (f"a venue refused a start-up request: {exc} (no order was sent; check the keys in the environment, "
            "live.leverage and the account's settings on the venue)")


def run_live(args: argparse.Namespace, settings: Settings) -> int:
    """Trade on the venues of ``live.venues`` (keys from the environment only) until a signal."""
    import os

    from adapters.errors import FatalVenueError, VenueError
    from adapters.registry import (
        LIVE_SPOT_MARKETS,
        LIVE_VENUES,
        LiveConfigError,
        LiveVenueConfig,
        build_live_session,
    )
    from bot.app import Application
    from bot.core.clock import ScaledClock
    from bot.core.domain import exchange_of, is_spot
    from bot.settings import venue_costs_for
    from bot.supervisor import Supervisor
    from bot.wiring import live_wiring

    venues = list(settings.live.venues)
    supported = sorted(LIVE_VENUES + LIVE_SPOT_MARKETS)
    if not venues:
        raise UserInputError("live.venues is empty: list the venues to trade in [live] venues = [...] "
                             f"(supported: {', '.join(supported)})")
    unknown = [v for v in venues if v not in supported]
    if unknown:
        raise UserInputError(f"setting 'live.venues': unknown venue {unknown[0]!r} "
                             f"(supported for live trading: {', '.join(supported)})")
    if len(venues) < 2:
        raise UserInputError("setting 'live.venues': a hedged position needs two venues; list at least two")
    if settings.strategy.execution != "taker":
        raise UserInputError("setting 'strategy.execution': the live adapters do not send post-only orders yet; "
                             'use "taker" for --live (maker_taker runs in paper and backtest)')
    if settings.live.leverage > settings.risk.max_leverage:
        raise UserInputError(f"setting 'live.leverage' {settings.live.leverage} is above risk.max_leverage "
                             f"{settings.risk.max_leverage}: lower it")
    db_path = Path(args.db) if args.db is not None else settings.bot.live_db_path
    if db_path.resolve() == settings.bot.paper_db_path.resolve():
        raise UserInputError(f"live database {db_path} is the paper database (bot.paper_db_path); "
                             "live runs must use another file (--db or bot.live_db_path)")
    lock = claim_database(db_path, venue_file=False)  # one bot per database, our own healthy file (else exit 2)
    _check_writable(db_path)
    configs = {}
    for name in venues:
        # a spot market ("bybit:spot") reaches its exchange's endpoint unless it has its own section
        own = settings.venues.get(name) or settings.venues.get(exchange_of(name))
        try:
            fees = venue_costs_for(settings, name).fees
        except UserInputError:
            if not is_spot(name):
                raise
            fees = None  # the adapter's built-in spot base tier (adapters.registry.DEFAULT_FEES)
        configs[name] = LiveVenueConfig(
            testnet=own.testnet if own else False,
            base_url=own.base_url if own else None,
            ws_url=own.ws_url if own else None,
            allow_remote_base_url=own.allow_remote_base_url if own else False,
            leverage=settings.live.leverage,
            fees=fees,
        )
    _configure_logging(settings)
    duration = float(args.duration) if args.duration is not None else None

    async def main() -> int:
        try:
            session = await build_live_session(configs, os.environ, symbols=settings.live.symbols,
                                               max_slippage_bps=settings.risk.max_slippage_bps)
        except (LiveConfigError, FatalVenueError) as exc:
            raise UserInputError(str(exc)) from None
        except VenueError as exc:  # (reading markets: nothing was sent)
            raise UserInputError(_unreachable_at_start(exc)) from None
        try:
            for line in session.banner():
                print(f"live: {line}", file=sys.stderr)
            print(f"live caps: {settings.strategy.max_positions} positions, "
                  f"{settings.strategy.notional_usd_per_position} USD per leg, leverage {settings.live.leverage}, "
                  f"max slippage {settings.risk.max_slippage_bps} bps; database {db_path}; logs {settings.bot.log_path}. "
                  "Ctrl-C or SIGTERM flattens and stops.", file=sys.stderr)
            if settings.live.busy_poll:
                print("live: event loop busy-polls (live.busy_poll): one CPU stays at 100 % while the bot runs",
                      file=sys.stderr)
            try:
                for line in await session.setup():
                    print(f"live set-up: {line}", file=sys.stderr)
            except (LiveConfigError, FatalVenueError) as exc:
                raise UserInputError(f"venue set-up refused: {exc} (check the keys in the environment and the "
                                     "account's permissions)") from None
            except VenueError as exc:  # (account settings and reads: no order was sent yet)
                raise UserInputError(_unreachable_at_start(exc)) from None
            # The spread forecast's warm-up (used when the database has no saved levels yet).
            with anyio.move_on_after(60):
                for line in await session.feed.load_history(settings.forecast.warmup_hours, utc_now_ms()):
                    print(f"live history: {line}", file=sys.stderr)
            app = Application(settings, live_wiring(settings, session, db_path, ScaledClock(utc_now_ms(), 1.0)))
            supervisor = Supervisor(app=app, duration_wall_s=duration,
                                    deadline_wall_s=settings.shutdown.deadline_seconds)
            return await supervisor.run()
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()

    from bot.core.busy_poll import loop_options

    with lock:
        return anyio.run(main, backend_options=loop_options(settings.live.busy_poll))


def run_paper_live(args: argparse.Namespace, settings: Settings) -> int:
    """``--paper --market live``: paper trading on the live venues' public data (a dry run). No key
    is read, no order reaches a venue: the paper venues match against the live books and pay
    funding at each venue's real settlement instant from its live quote."""
    from adapters.errors import FatalVenueError, VenueError
    from adapters.registry import LIVE_VENUES, LiveConfigError, LiveVenueConfig, build_public_session
    from bot.app import Application
    from bot.core.clock import ScaledClock
    from bot.ops.surface import OperatorSurface
    from bot.settings import venue_costs_for
    from bot.supervisor import Supervisor
    from bot.wiring import paper_live_wiring

    if args.speed is not None or args.seed is not None:
        raise UserInputError("--speed and --seed are for the simulated market; live data runs at the wall clock "
                             "(drop them, or use --market sim)")
    venues = list(settings.live.venues)
    if not venues:
        raise UserInputError("live.venues is empty: list the venues whose live data to paper-trade on in "
                             f"[live] venues = [...] (supported: {', '.join(LIVE_VENUES)})")
    unknown = [v for v in venues if v not in LIVE_VENUES]
    if unknown:
        raise UserInputError(f"setting 'live.venues': {unknown[0]!r} has no public perpetual feed for "
                             f"--paper --market live (supported: {', '.join(LIVE_VENUES)})")
    if len(venues) < 2:
        raise UserInputError("setting 'live.venues': a hedged position needs two venues; list at least two")
    db_path = Path(args.db) if args.db is not None else settings.bot.paper_live_db_path
    for other, key in ((settings.bot.paper_db_path, "bot.paper_db_path"), (settings.bot.live_db_path, "bot.live_db_path")):
        if db_path.resolve() == other.resolve():
            raise UserInputError(f"paper-on-live database {db_path} is the {key} database; use another file "
                                 "(--db or bot.paper_live_db_path)")
    configs = {}
    for name in venues:
        own = settings.venues.get(name)
        configs[name] = LiveVenueConfig(
            testnet=own.testnet if own else False,
            base_url=own.base_url if own else None,
            ws_url=own.ws_url if own else None,
            allow_remote_base_url=own.allow_remote_base_url if own else False,
            fees=venue_costs_for(settings, name).fees,
        )
    surface = OperatorSurface(settings)
    lock = claim_database(db_path)  # one bot per database, our own healthy file (else exit 2)
    _check_writable(db_path)
    _configure_logging(settings)
    duration = float(args.duration) if args.duration is not None else None

    async def main() -> int:
        try:
            session = await build_public_session(configs, symbols=settings.live.symbols)
        except (LiveConfigError, FatalVenueError) as exc:
            raise UserInputError(str(exc)) from None
        except VenueError as exc:
            raise UserInputError(f"cannot read the venues' public data: {exc} (check [venues.NAME] base_url and "
                                 "the network)") from None
        try:
            for line in session.banner():
                print(f"paper on live data: {line}", file=sys.stderr)
            with anyio.move_on_after(60):
                for line in await session.feed.load_history(settings.forecast.warmup_hours, utc_now_ms()):
                    print(f"paper on live data history: {line}", file=sys.stderr)
            wiring = paper_live_wiring(settings, session.feed, db_path, ScaledClock(utc_now_ms(), 1.0))
            app = Application(settings, surface.wrap(wiring))
            surface.attach(app)
            supervisor = Supervisor(app=app, duration_wall_s=duration,
                                    deadline_wall_s=settings.shutdown.deadline_seconds,
                                    on_signal=settings.shutdown.on_signal, surface=surface)
            print(f"paper trading on live market data (no keys read, no order sent to any venue); database "
                  f"{db_path}; logs {settings.bot.log_path}. Ctrl-C or SIGTERM "
                  + ("flattens the paper positions and stops." if settings.shutdown.on_signal == "flatten"
                     else "stops, keeping paper positions open (shutdown.on_signal = keep)."), file=sys.stderr)
            return await supervisor.run()
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()

    with lock:
        return anyio.run(main)
