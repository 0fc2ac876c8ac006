"""Command line: ``python -m bot``.

Every user error (bad arguments, bad settings, unreadable files) prints ONE line to stderr and
exits with code 2; nothing else is lost and no traceback is shown.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn

from bot.errors import EXIT_USAGE, UserInputError
from storage.errors import StorageError

DESCRIPTION = """\
Delta-neutral funding-rate arbitrage: long the venue paying less funding, short the one paying more.

run the bot:
  python -m bot --paper [--speed X] [--duration S] [--seed N] [--db PATH] [--settings PATH]
  python -m bot --paper --market live [--duration S] [--db PATH] [--settings PATH]   (dry run on live data, no keys)
  python -m bot --live  [--db PATH] [--settings PATH]
replay history through the same application, and fit the spread forecast on it:
  python -m bot backtest --data DIR [--from ISO] [--to ISO] [--db PATH] [--json] [--plot PATH]
  python -m bot fit --data DIR [--from ISO] [--to ISO] [--out SETTINGS_PATH] [--json]
inspect:
  python -m bot scan [--market sim | --replay DIR --at ISO_TIME] [--limit N] [--json]
  python -m bot report [--db PATH] [--json]
  python -m bot postmortem POSITION_ID [--db PATH] [--json]
control a running bot (through its database):
  python -m bot halt [--reason TEXT] | resume | flatten
local venue emulator (offline rehearsal of --live):
  python -m bot emulate --venues bybit,binanceusdm,hyperliquid,okx [--port-base N] [--state PATH] [--seed N] [--speed X]
                       [--rate-limits] [--history-hours H] [--network-delay-ms MS]
"""


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        raise UserInputError(f"{message} (see: python -m bot --help)")


def _path_arg(text: str) -> Path:
    """A path argument; ``~`` is expanded (also when the shell did not), NUL refused."""
    if "\x00" in text:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL character")
    return Path(text).expanduser()


def _decimal_arg(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _speed_arg(text: str) -> Decimal:
    from bot.settings import MAX_SPEED, MIN_SPEED

    value = _decimal_arg(text)
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"expected a speed from {MIN_SPEED} to {MAX_SPEED:,}, got {text!r}")
    return value


DEFAULT_EMULATOR_HISTORY_HOURS = 672  # = forecast.warmup_hours' default


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _common_options(default: object) -> argparse.ArgumentParser:
    """--settings/--db, accepted before or after the command (the subcommand copy must not reset them)."""
    common = _OneLineParser(add_help=False)
    common.add_argument("--settings", type=_path_arg, metavar="PATH", default=default,
                        help="settings file (default: ./settings.toml, else built-in defaults)")
    common.add_argument("--db", type=_path_arg, metavar="PATH", default=default,
                        help="SQLite database (default: bot.paper_db_path for paper, bot.live_db_path for live)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(None)
    sub_common = _common_options(argparse.SUPPRESS)

    parser = _OneLineParser(
        prog="python -m bot", description=DESCRIPTION, parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paper", action="store_true", help="trade on the built-in simulated market (offline)")
    mode.add_argument("--live", action="store_true", help="trade on the venues of live.venues (keys from the environment; README: Going live)")
    parser.add_argument("--market", choices=["sim", "live"], default="sim",
                        help="market data for --paper: sim (built-in, default) or live (the venues of live.venues, public data, no keys: a dry run)")
    parser.add_argument("--speed", type=_speed_arg, metavar="X",
                        help="simulated time runs X times faster than the wall clock (default: sim.speed)")
    parser.add_argument("--duration", type=_decimal_arg, metavar="SECONDS",
                        help="stop after this many wall-clock seconds, exactly as on SIGTERM (flatten, exit 0)")
    parser.add_argument("--seed", type=_int_arg, metavar="N", help="simulated market seed (default: sim.seed)")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)

    scan = sub.add_parser("scan", parents=[sub_common], help="rank funding-spread opportunities after all costs")
    scan.add_argument("--market", choices=["sim"], default="sim", help="rank on the simulated market (default)")
    scan.add_argument("--replay", type=_path_arg, metavar="DIR", help="rank from historical funding CSVs in DIR instead")
    scan.add_argument("--at", metavar="ISO_TIME", help="with --replay: the instant to rank at, e.g. 2026-03-01T00:00:00Z")
    scan.add_argument("--limit", type=_positive_int, metavar="N", help="show at most N rows (default: scan.limit)")
    scan.add_argument("--seed", type=_int_arg, metavar="N", default=argparse.SUPPRESS, help="simulated market seed (default: sim.seed)")
    scan.add_argument("--json", action="store_true", help="print a JSON array instead of a table")

    backtest = sub.add_parser("backtest", parents=[sub_common],
                              help="replay historical funding through the real strategy, engine and paper venues")
    backtest.add_argument("--data", type=_path_arg, metavar="DIR", required=True,
                          help="directory of funding CSV files (and optional price files); format in the README")
    backtest.add_argument("--from", dest="from_time", metavar="ISO_TIME", help="start (default: first data)")
    backtest.add_argument("--to", dest="to_time", metavar="ISO_TIME", help="end (default: last data)")
    backtest.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    backtest.add_argument("--plot", type=_path_arg, metavar="PATH", help="write an HTML page with the equity curve")

    fit = sub.add_parser("fit", parents=[sub_common], help="fit the spread forecast's parameters on funding history")
    fit.add_argument("--data", type=Path, metavar="DIR", required=True, help="directory of funding CSV files")
    fit.add_argument("--from", dest="from_time", metavar="ISO_TIME", help="start of the fitting window (default: first data)")
    fit.add_argument("--to", dest="to_time", metavar="ISO_TIME", help="end of the fitting window (default: last data)")
    fit.add_argument("--out", type=Path, metavar="PATH",
                     help="settings file to write the [forecast] values into (created, or updated in place)")
    fit.add_argument("--json", action="store_true", help="print JSON")

    report = sub.add_parser("report", parents=[sub_common], help="positions, PnL, open exposure, breakers")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.add_argument("--live", action="store_true", help="read the live database (default: paper)")

    post = sub.add_parser("postmortem", parents=[sub_common], help="one position's full timeline")
    post.add_argument("position_id", metavar="POSITION_ID")
    post.add_argument("--json", action="store_true", help="print JSON")
    post.add_argument("--live", action="store_true", help="read the live database (default: paper)")

    for name, text in (("halt", "stop new entries and stop all orders but cancels and emergency closes"),
                       ("resume", "clear a manual halt"),
                       ("flatten", "close every position of the running bot (reason manual_flatten)")):
        control = sub.add_parser(name, parents=[sub_common], help=text)
        control.add_argument("--live", action="store_true", help="act on the live bot's database (default: paper)")
        if name == "halt":
            control.add_argument("--reason", default="manual halt", help="recorded with the halt")
    emulate = sub.add_parser("emulate", parents=[sub_common], help="serve emulated venues on 127.0.0.1")
    emulate.add_argument("--venues", required=True, help="comma-separated: bybit,binanceusdm,hyperliquid,okx")
    emulate.add_argument("--port-base", type=_positive_int, metavar="N",
                         help="control on N, venues on N+1.. (default: free ports, printed at start)")
    emulate.add_argument("--state", type=Path, metavar="PATH",
                         help="venue state file kept across restarts (default: data/emulator.venues.sqlite)")
    emulate.add_argument("--seed", type=_int_arg, metavar="N", default=argparse.SUPPRESS, help="market seed (default 0)")
    emulate.add_argument("--speed", type=_decimal_arg, metavar="X", default=argparse.SUPPRESS,
                         help="venue clock runs X times faster than the wall clock (default 1)")
    emulate.add_argument("--rate-limits", action="store_true",
                         help="enforce each venue's documented REST rate limits (default: off)")
    emulate.add_argument("--network-delay-ms", type=_decimal_arg, metavar="MS", default=argparse.SUPPRESS,
                         help="handle each REST request MS ms after it arrives, like a venue on another "
                              "machine (default 0)")
    emulate.add_argument("--history-hours", type=_int_arg, metavar="H", default=DEFAULT_EMULATOR_HISTORY_HOURS,
                         help="public funding history a fresh state starts with, like a real venue's "
                              f"(default {DEFAULT_EMULATOR_HISTORY_HOURS}: a live bot's forecast warm-up; 0: none)")
    return parser


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then()`` right after the module ``name`` is first imported (before the importer
    continues), then leaves ``sys.meta_path``."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the ordinary finders
        loader = spec.loader if spec is not None else None
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec
        then = self.then

        def exec_then(module: object) -> None:
            exec_module(module)
            then()

        loader.exec_module = exec_then  # type: ignore[union-attr]
        return spec


def _quiet_loguru_once_imported() -> None:
    """Replace loguru's default sink (it prints frame variables) as soon as loguru is imported: a command that never imports it (``scan``) does not pay for
    loguru and asyncio at start-up (about a tenth of a second)."""

    def quiet() -> None:
        # (not through bot.logging_setup: its own import of loguru may be what runs this)
        from loguru import logger

        # loguru's default stderr sink with ``diagnose=True`` prints frame variables: the same sink
        # without variable values (commands that never call ``configure_logging`` use it)
        logger.remove()
        logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)

    if "loguru" in sys.modules:
        quiet()
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("loguru", quiet))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    _quiet_loguru_once_imported()
    try:
        return _dispatch(build_parser().parse_args(argv))
    except BrokenPipeError:  # e.g. `python -m bot report | head`: the reader left, nothing is lost
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep the interpreter's final flush quiet
        return 0
    except (UserInputError, StorageError) as exc:  # bad input, a foreign/broken database, a bot already running
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    """Error messages are one line: newlines inside a message (a quoted value) are flattened."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _dispatch(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    settings = load_settings(args.settings)
    if args.command == "scan":
        from bot.scan_command import run_scan

        return run_scan(args, settings)
    if args.command == "backtest":
        from bot.backtest.command import run_backtest

        return run_backtest(args, settings)
    if args.command == "fit":
        from bot.fit_command import run_fit

        return run_fit(args, settings)
    if args.command == "report":
        from bot.report import run_report

        return run_report(args, settings)
    if args.command == "postmortem":
        from bot.report import run_postmortem

        return run_postmortem(args, settings)
    if args.command == "emulate":
        from paper.emulator.cli import run_emulate

        return run_emulate(args)
    if args.command in ("halt", "resume", "flatten"):
        from bot.control import run_control

        return run_control(args, settings)
    if args.market == "live" and not args.paper:
        raise UserInputError("--market live is a paper mode: use --paper --market live (a dry run on live data); "
                             "--live trades real money and needs no --market")
    if args.live:
        from bot.runner import run_live

        return run_live(args, settings)
    if args.paper and args.market == "live":
        from bot.runner import run_paper_live

        return run_paper_live(args, settings)
    if args.paper:
        from bot.runner import run_paper

        return run_paper(args, settings)
    raise UserInputError("choose a mode: --paper (simulated) or --live, or a command such as scan")
