"""``python -m bot backtest --data DIR [--from ISO] [--to ISO] [--db PATH] [--json] [--plot PATH]``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path

import anyio

from bot.core.clock import VirtualClock, iso_utc, parse_iso_utc
from bot.core.history import HistoryFormatError, load_market_history
from bot.errors import UserInputError
from bot.params import position_notional_usd
from bot.settings import Settings, venue_costs_for

RUN_MODE_KEY = "run.mode"
MS_PER_HOUR = 3_600_000


def run_backtest(args: argparse.Namespace, settings: Settings) -> int:
    """Replay the history in ``args.data`` through the application; print the summary."""
    from bot.app import Application
    from bot.backtest.driver import drive
    from bot.backtest.references import hold_best_pair, naive
    from bot.backtest.summary import RunFacts, build_summary, render_text
    from bot.logging_setup import configure_logging
    from bot.wiring import Wiring, paper_executor_factory
    from paper.replay_market import ReplayMarket
    from paper.venue_store import venue_store_path_for
    from storage import Storage

    wall_start = time.monotonic()
    from_ts = _time_arg(args.from_time, "--from")
    to_ts = _time_arg(args.to_time, "--to")
    if from_ts is not None and to_ts is not None and to_ts <= from_ts:
        raise UserInputError("--to must be after --from")
    history, prices = load_history_or_exit(args.data, "--data")
    costs = {venue: venue_costs_for(settings, venue) for venue in _venues_with_spot(history, prices)}
    bt = settings.backtest

    def replay() -> ReplayMarket:
        return replay_market(history, prices, settings)

    market = replay()
    start = from_ts if from_ts is not None else market.start_ts_ms
    end = to_ts if to_ts is not None else market.end_ts_ms
    events = market.event_times(start, end)
    if not events:
        raise UserInputError(f"no data between {iso_utc(start)} and {iso_utc(end)} in {args.data} "
                             "(check --from/--to against the files' dates)")
    db_path = _prepare_db(Path(args.db) if args.db is not None else settings.bot.backtest_db_path, settings)
    configure_logging(db_path.with_name(db_path.stem + ".log.jsonl"))
    clock = VirtualClock(events[0])
    wiring = Wiring(
        mode="backtest",
        market=market,
        clock=clock,
        db_path=db_path,
        open_executor=paper_executor_factory(settings, venue_store_path_for(db_path), faults=False, latency=False),
        description=f"backtest of {args.data} from {iso_utc(events[0])} to {iso_utc(events[-1])}",
    )
    app = Application(settings, wiring, status_out=_NullOut())
    progress = _progress_bar() if sys.stderr.isatty() else None

    async def run() -> list:
        return await drive(app, clock, events,
                           reconcile_every_ms=int(bt.reconcile_every_hours * MS_PER_HOUR),
                           sample_every_ms=int(bt.equity_sample_hours * MS_PER_HOUR), close_out=market.close_out,
                           progress=progress)

    samples = anyio.run(run)
    if progress is not None:
        print(file=sys.stderr)
    strat = settings.strategy
    references = [
        hold_best_pair(replay(), costs, events, position_notional_usd(settings)),
        # The rule the bot shipped with before it forecast spreads: 72 h horizon, 1 USD minimum,
        # 8 h minimum hold; same notional and position count as ours so capital is comparable.
        naive(replay(), costs, events, notional_usd=position_notional_usd(settings), horizon_hours=Decimal(72),
              min_expected_net_usd=Decimal(1), max_positions=strat.max_positions, min_hold_hours=Decimal(8)),
    ]
    storage = Storage.open(db_path)
    try:
        facts = RunFacts(from_ts_ms=events[0], to_ts_ms=events[-1], venues=market.venues(), symbols=market.symbols(),
                         untradable_symbols=market.untradable_symbols(), events=len(events),
                         max_leverage=settings.risk.max_leverage, wall_seconds=time.monotonic() - wall_start,
                         notional_usd=position_notional_usd(settings),
                         capital_usd_per_venue=settings.strategy.capital_usd_per_venue)
        summary = build_summary(storage, venue_store_path_for(db_path), market, samples, references, facts)
    finally:
        storage.close()
    summary["database"] = str(db_path)
    if args.plot is not None:
        from bot.backtest.plot import write_plot

        try:
            write_plot(Path(args.plot), samples, summary)
        except OSError as exc:
            raise UserInputError(f"cannot write --plot {args.plot}: {exc.strerror} (pass a writable path)") from None
        summary["plot"] = str(args.plot)
    print(json.dumps(summary, indent=2) if args.json else render_text(summary))
    return 0


def _time_arg(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_iso_utc(text)
    except ValueError:
        raise UserInputError(f"{flag}: not an ISO-8601 time: {text!r} (e.g. 2026-01-01T00:00:00Z)") from None


def load_history_or_exit(data: Path, flag: str):
    """Funding and price history from ``data``; every failure is a one-line ``UserInputError``."""
    try:
        return load_market_history(data)
    except HistoryFormatError as exc:
        raise UserInputError(f"{flag}: {exc} (fix or remove the file)") from None
    except FileNotFoundError as exc:
        raise UserInputError(f"{flag}: {exc} (give a directory of funding CSV files)") from None
    except OSError as exc:
        raise UserInputError(f"{flag}: cannot read {data}: {exc.strerror or exc}") from None


def replay_market(history, prices, settings: Settings):
    """The replay of ``history`` with the settings' costs, staleness and quote pairing.

    Every venue in the data needs known fees (``[venues.NAME]``), or this raises naming it."""
    from paper.replay_market import ReplayMarket

    costs = {venue: venue_costs_for(settings, venue) for venue in _venues_with_spot(history, prices)}
    bt = settings.backtest
    return ReplayMarket(
        history, prices, costs,
        max_quote_age_ms=int(settings.market.max_quote_age_seconds * 1000),
        max_price_age_ms=int(bt.max_price_age_hours * MS_PER_HOUR),
        interchangeable_quotes=tuple(bt.interchangeable_quotes),
    )


def _prepare_db(db_path: Path, settings: Settings) -> Path:
    """A backtest writes a fresh database. It replaces a previous backtest's file, never another one."""
    from paper.venue_store import venue_store_path_for
    from storage import Storage

    db_path = db_path.expanduser()
    for other, name in ((settings.bot.paper_db_path, "bot.paper_db_path"), (settings.bot.live_db_path, "bot.live_db_path")):
        if db_path.resolve() == other.expanduser().resolve():
            raise UserInputError(f"--db {db_path} is the {name} database; a backtest needs its own file "
                                 "(default bot.backtest_db_path)")
    if db_path.exists():
        if _run_mode(db_path) != "backtest":
            raise UserInputError(f"--db {db_path} exists and is not a backtest database; refusing to replace it "
                                 "(choose a new path)")
        for path in (db_path, venue_store_path_for(db_path)):
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        storage = Storage.open(db_path)
    except (OSError, sqlite3.Error) as exc:
        raise UserInputError(f"cannot create database {db_path}: {exc} (pass a writable path to --db)") from None
    try:
        storage.set_kv(RUN_MODE_KEY, "backtest", 0)
    finally:
        storage.close()
    return db_path


def _run_mode(db_path: Path) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (RUN_MODE_KEY,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _progress_bar():
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        if time.monotonic() - started < 2 and done < total:
            return  # short runs need no bar
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events "
                         f"{Decimal(done * 100) / max(total, 1):.0f}%")
        sys.stderr.flush()

    return show


class _NullOut:
    """The status line has no terminal in a backtest."""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def _venues_with_spot(history, prices) -> list[str]:
    """The funding files' venues plus the spot markets ("<venue>:spot") the price files carry."""
    from bot.core.domain import is_spot

    return sorted(set(history.venues()) | {venue for venue, _symbol in prices if is_spot(venue)})
