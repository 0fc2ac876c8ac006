"""The terminal: a live status view (rich) when stdout is a terminal, plain lines otherwise.

The first render happens as soon as the loops start and says what the bot is doing (reconciling,
scanning N symbols and the best candidate so far, managing positions, halted and why, stopping),
so a newcomer is never left looking at a silent terminal. ``close`` ends the view on its own
line before the final message is printed, so the two are never glued together.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from loguru import logger

from bot.core.clock import iso_utc
from bot.core.domain import ZERO, Opportunity
from bot.ops.views import ranking
from machines.bot import BotState

if TYPE_CHECKING:
    from bot.app import Application


def activity(app: "Application") -> str:
    """One sentence: what the bot is doing right now."""
    state = app.bot.state
    engine = app.engine
    open_count = len(engine.active_positions()) if engine else 0
    if state in (BotState.INITIALIZING, BotState.RECOVERING):
        return "reconciling with the venues (restoring positions, checking orders and fills)"
    if state in (BotState.STOPPING, BotState.STOPPED):
        return "stopping: no new entries; closing positions and verifying flat"
    if state is BotState.HALTED:
        return f"halted ({'; '.join(app.board.global_open()) or app.board.trading_state().value}): no new entries, " \
               f"{open_count} open position(s) still managed"
    if state is BotState.OPENING:
        return "opening a position: both legs in flight"
    if state is BotState.CLOSING:
        return "closing a position: both legs in flight"
    if state is BotState.MONITORING:
        return f"at capacity ({open_count} open): collecting funding, checking exits every " \
               f"{app.settings.strategy.loop_interval_seconds:g} sim s"
    symbols = {q.symbol for q in app.market.quotes()}
    text = (f"scanning {len(symbols)} symbols on {len(app.market.venues())} venues every "
            f"{app.settings.strategy.loop_interval_seconds:g} sim s")
    best = app.last_ranked[:1] if app.last_ranked is not None else []  # the strategy's forecast view
    need = app.settings.strategy.min_expected_net_usd
    if best:
        opp = best[0]
        held = {p.symbol for p in engine.active_positions()} if engine else set()
        verdict = "held" if opp.symbol in held else "qualifies" if opp.expected_net >= need else f"needs >= ${need}"
        if app.entry_denial is not None:  # the entry gates refused the last pass's best candidate
            verdict += f"; not entered: {app.entry_denial}"
        text += (f"; best: {opp.symbol} long {opp.long_venue} / short {opp.short_venue}, "
                 f"expected net ${opp.expected_net:.2f} over {opp.horizon_hours}h ({verdict})")
    else:
        now_best = _best_on_current_rates(app)
        if app.last_ranked is None:
            text += "; first strategy pass pending"
        else:
            text += f"; nothing to enter: no pair's forecast net clears strategy.min_expected_net_usd (${need})"
        if now_best is None:
            text += "; no fresh quotes to rank"
        else:  # the strategy ranks on FORECAST spreads (they revert); show what current rates would say
            text += (f"; best on current rates: {now_best.symbol} long {now_best.long_venue} / short "
                     f"{now_best.short_venue}, ${now_best.expected_net:.2f} over {now_best.horizon_hours}h")
    return text


def _best_on_current_rates(app: "Application") -> Opportunity | None:
    try:
        now_best = ranking(app, 1)
    except Exception as exc:  # the view must never fail the loop over a ranking problem
        logger.bind(kind="status_ranking_failed").debug(f"ranking for the status view failed: {exc!r}")
        return None
    return now_best[0] if now_best else None


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


class StatusView:
    """Renders every ``interval_s`` wall seconds until ``close``."""

    def __init__(self, app: "Application", out: TextIO, interval_s: float) -> None:
        self.app = app
        self.out = out
        self.interval_s = interval_s
        self.interactive = _isatty(out)
        self._live: Any = None
        self._closed = False

    async def run(self) -> None:
        try:
            while not self._closed:
                self.render()
                await anyio.sleep(self.interval_s)
        except (OSError, ValueError) as exc:  # broken pipe, closed terminal: only the view stops
            self._live = None
            logger.bind(kind="status_off").warning(f"status view turned off: {exc!r}")
        finally:
            self.close()

    def render(self) -> None:
        if self._closed:
            return
        if not self.interactive:
            self.out.write(self.plain_line() + "\n")
            self.out.flush()
            return
        from rich.console import Console
        from rich.live import Live

        if self._live is None:
            console = Console(file=self.out, force_terminal=True)
            self._live = Live(self.rich_view(), console=console, auto_refresh=False, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        self._live.update(self.rich_view(), refresh=True)

    def close(self) -> None:
        """End the view on its own line (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._live is not None:
            try:
                self._live.stop()
            except (OSError, ValueError) as exc:  # the terminal is gone: nothing left to end
                logger.bind(kind="status_off").debug(f"status view could not end cleanly: {exc!r}")
            self._live = None

    def plain_line(self) -> str:
        """The status line, what the bot is doing and, when any is open, its breakers (a venue
        unreachable or its data stale is otherwise only in the log file)."""
        breakers = breakers_text(self.app)
        return f"{status_line(self.app)} | {activity(self.app)}" + (f" | breakers: {breakers}" if breakers else "")

    def rich_view(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        app = self.app
        engine = app.engine
        header = Text(status_line(app), style="bold")
        doing = Text("doing: " + activity(app), style="cyan")
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("position", "symbol", "long", "short", "size", "state", "funding", "fees", "funding-fees"):
            table.add_column(column, justify="right" if column in ("size", "funding", "fees", "funding-fees") else "left")
        for pos in (engine.active_positions() if engine else []):
            funding = engine.funding_usd.get(pos.position_id, ZERO)
            fees = engine.fees_usd.get(pos.position_id, ZERO)
            net = funding - fees
            table.add_row(pos.position_id[:12], pos.symbol, pos.long_venue, pos.short_venue,
                          f"{max(pos.long_filled_base, pos.short_filled_base)}", pos.state.value, _money(funding),
                          _money(fees), Text(_money(net), style="green" if net >= 0 else "red"))
        parts: list[Any] = [header, doing]
        parts.append(table if table.row_count else Text("no open positions", style="dim"))
        breakers = breakers_text(app)
        parts.append(Text("breakers: " + (breakers or "all closed"), style="yellow" if breakers else "dim"))
        return Group(*parts)


def breakers_text(app: "Application") -> str:
    """The open breakers ("" when all are closed): global ones, then each venue's reasons."""
    venues = sorted(app.board.open_venues())
    return "; ".join(app.board.global_open()
                     + [f"venue {v}: {', '.join(app.board.venue_open_reasons(v))}" for v in venues])


def status_line(app: "Application") -> str:
    engine = app.engine
    funding = engine.total_funding_usd() if engine else ZERO
    fees = engine.total_fees_usd() if engine else ZERO
    open_count = len(engine.active_positions()) if engine else 0
    closed = engine.closed_count() if engine else 0
    return (f"[{iso_utc(app.clock.now_ms())[:19]}Z] bot={app.bot.state.value} "
            f"trading={app.board.trading_state().value} open={open_count} closed={closed} "
            f"funding=${funding:.2f} fees=${fees:.2f} funding-fees=${funding - fees:.2f} {app.lag_text()}"  # no price PnL in it
            f"{app.catch_up.status() if hasattr(app, 'catch_up') else ''}")


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (OSError, ValueError):
        return False
