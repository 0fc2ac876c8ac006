"""What a NOT FLAT shutdown reports: every venue that could not be read, what the others still hold,
and the bot's open positions, as one readable line (it was a dict repr naming only the first
unreachable venue's error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.errors import TemporaryVenueError
from bot.supervisor import exposure_text
from tests.test_app_integration import easy_settings, make_app, run_minutes


class _SomeVenuesDown:
    """Wraps the executor: ``positions`` fails for the venues in ``down`` (and for "all venues")."""

    def __init__(self, inner, down: set[str]) -> None:
        self._inner = inner
        self.down = down

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def positions(self, venue: str | None = None):
        if venue is None or venue in self.down:
            raise TemporaryVenueError(venue or "paper", "did not answer")
        return await self._inner.positions(venue)


@pytest.mark.anyio
async def test_remaining_exposure_names_every_unreachable_venue_and_what_the_others_hold(tmp_path: Path) -> None:
    app, clock = await make_app(tmp_path, easy_settings())
    try:
        await run_minutes(app, clock, 130)
        assert app.engine is not None
        held = app.engine.active_positions()[0]
        down = {held.long_venue, sorted(set(app.board.venues) - {held.long_venue, held.short_venue})[0]}
        app.engine.executor = _SomeVenuesDown(app.engine.executor, down)
        remaining = await app.remaining_exposure()
        for venue in down:
            assert remaining[f"venue {venue}"] == "unreachable"
        assert remaining[f"{held.short_venue}:{held.symbol}"].startswith("-")  # the readable venue's short
        assert remaining[f"position:{held.position_id}"] == held.state.value
        text = exposure_text(remaining)
        assert "\n" not in text and "{" not in text and f"venue {held.long_venue} unreachable" in text
    finally:
        await app.close()


def test_exposure_text_is_one_plain_line() -> None:
    assert exposure_text({"bybit:BTC": "-0.01", "position:ab12": "closing", "venue okx": "unreachable"}) == \
        "bybit:BTC -0.01; position:ab12 closing; venue okx unreachable"
