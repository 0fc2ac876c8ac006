"""The terminal status view: live (rich) on a terminal, plain lines otherwise; says what the bot
is doing from the first render; ends its line before the final message."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest

from bot.ops.terminal import StatusView, activity
from machines.bot import BotState
from tests.test_app_integration import easy_settings, make_app, run_minutes


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_plain_lines_when_not_a_terminal_say_what_the_bot_does(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        out = io.StringIO()
        view = StatusView(app, out, 1.0)
        view.render()  # the first render happens at once, before any sleep
        first = out.getvalue()
        assert first.count("\n") == 1 and "bot=" in first
        assert "scanning" in first and "symbols on 3 venues" in first
        assert "first strategy pass pending; best on current rates:" in first
        await run_minutes(app, clock, 130)
        view.render()
        assert "open=" in out.getvalue().splitlines()[-1]
        view.close()
        view.render()  # closed: nothing more
        assert out.getvalue().count("\n") == 2
    finally:
        await app.close()


@pytest.mark.anyio
async def test_plain_lines_name_an_open_venue_breaker(tmp_path: Path) -> None:
    # Without a terminal (a service's journal), a venue that keeps failing was only in the log file.
    app, _clock = await make_app(tmp_path, easy_settings())
    try:
        out = io.StringIO()
        view = StatusView(app, out, 1.0)
        view.render()
        assert "breakers:" not in out.getvalue()  # all closed: the line stays short
        venue = app.board.venues[0]
        for _ in range(20):
            app._apply_board(app.board.record_venue_failure(venue, app.clock.now_ms(), "venue did not answer"))
        view.render()
        last = out.getvalue().splitlines()[-1]
        assert f"breakers: venue {venue}:" in last and "venue did not answer" in last
    finally:
        await app.close()


@pytest.mark.anyio
async def test_live_view_on_a_terminal_shows_positions_and_ends_on_its_own_line(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        await run_minutes(app, clock, 130)
        assert app.engine is not None and app.engine.active_positions()
        out = FakeTerminal()
        view = StatusView(app, out, 1.0)
        view.render()
        view.render()
        screen = out.getvalue()
        assert "\x1b[" in screen  # drawn with terminal control sequences
        assert "doing:" in screen and "funding" in screen and "breakers:" in screen
        symbol = app.engine.active_positions()[0].symbol
        assert symbol in screen
        view.close()
        out.write("stopped: signal SIGTERM; all positions closed\n")  # what the supervisor prints next
        text = out.getvalue()
        final_at = text.index("stopped: signal SIGTERM")
        before = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text[:final_at])  # control sequences print nothing
        assert before.endswith("\n"), repr(text[final_at - 40:final_at])  # never glued to the view
    finally:
        await app.close()


@pytest.mark.anyio
async def test_activity_names_the_reason_of_a_halt_and_the_stop(tmp_path: Path) -> None:
    app, _clock = await make_app(tmp_path, easy_settings())
    try:
        app._apply_board(app.board.kill(app.clock.now_ms(), "manual: maintenance"))
        await app._sync_bot_state()
        assert app.bot.state is BotState.HALTED
        assert "halted (manual: manual: maintenance)" in activity(app)
        await app.bot_transition("stop", "test")
        assert activity(app).startswith("stopping")
    finally:
        await app.close()


@pytest.mark.anyio
async def test_the_status_shows_the_strategys_own_view_and_why_nothing_is_entered(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        await run_minutes(app, clock, 2)
        assert app.last_ranked  # the strategy's ranking (forecast spreads), not a separate current-rate one
        best = app.last_ranked[0]
        assert f"best: {best.symbol} long {best.long_venue} / short {best.short_venue}" in activity(app)
        app.params = dataclasses.replace(app.params, entry=dataclasses.replace(app.params.entry, max_positions=0))
        await app.strategy_step()
        assert app.entry_denial is not None and "max_positions" in app.entry_denial
        assert f"not entered: {app.entry_denial}" in activity(app)
        app.last_ranked = []  # nothing clears the entry floor on the forecast
        text = activity(app)
        assert "nothing to enter: no pair's forecast net clears strategy.min_expected_net_usd" in text
        assert "best on current rates:" in text
    finally:
        await app.close()
