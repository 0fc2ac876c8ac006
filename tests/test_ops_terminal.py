"""The terminal status view: live (rich) on a terminal, plain lines otherwise; says what the bot
is doing from the first render; ends its line before the final message."""

from __future__ import annotations

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
        assert "scanning" in first and "symbols on 3 venues" in first and "best:" in first
        await run_minutes(app, clock, 130)
        view.render()
        assert "open=" in out.getvalue().splitlines()[-1]
        view.close()
        view.render()  # closed: nothing more
        assert out.getvalue().count("\n") == 2
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
