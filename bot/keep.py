"""Shutdown with ``shutdown.on_signal = "keep"``: leave hedged positions open for a restart.

An operator restarting to deploy may not want to pay two round trips of fees. On a signal (or
``--duration``) the bot then stops entries, cancels resting orders, closes only what is NOT
hedged (a position still opening, recovering, closing or in error is never left behind), and
verifies that every venue holds exactly the legs of the positions it keeps. The next start
resumes them through the restore and reconciliation path, like after a crash.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import anyio
from loguru import logger

from bot.core.domain import ZERO
from machines.position import PositionState

if TYPE_CHECKING:
    from bot.app import Application


async def keep_hedged(app: "Application") -> None:
    """Cancel resting orders and close every active position that is not hedged."""
    engine = app.engine
    assert engine is not None
    try:
        await engine.executor.cancel_all_orders(None)
    except Exception as exc:  # recorded; the verification below reports what it left
        await app.event("cancel_all_failed", "error", f"keep shutdown: cancelling resting orders failed: {exc!r}")

    async def close(pos) -> None:  # noqa: ANN001 - a PositionFsm
        try:
            await engine.close_position(pos, "shutdown", "not hedged at a keep shutdown", emergency=True)
        except Exception as exc:  # one failing close must not abort the others
            logger.opt(exception=exc).bind(kind="keep_close_failed").critical(f"closing {pos.position_id}: {exc!r}")

    async with anyio.create_task_group() as tg:
        for pos in engine.active_positions():
            if pos.state != PositionState.MONITORING:
                tg.start_soon(close, pos)


def kept_positions(app: "Application") -> list[str]:
    engine = app.engine
    assert engine is not None
    return [p.position_id for p in engine.active_positions() if p.state == PositionState.MONITORING]


async def unexpected_exposure(app: "Application") -> dict[str, str]:
    """What the venues hold beyond the kept positions' legs, and positions neither kept nor closed."""
    engine = app.engine
    assert engine is not None and app.executor is not None
    expected: dict[tuple[str, str], Decimal] = {}
    problems: dict[str, str] = {}
    for pos in engine.active_positions():
        if pos.state != PositionState.MONITORING:
            problems[f"position:{pos.position_id}"] = pos.state.value
            continue
        long_key, short_key = (pos.long_venue, pos.symbol), (pos.short_venue, pos.symbol)
        expected[long_key] = expected.get(long_key, ZERO) + pos.long_filled_base
        expected[short_key] = expected.get(short_key, ZERO) - pos.short_filled_base
    try:
        actual = await engine.venue_sizes()  # perp positions and the bot's spot coins
    except Exception as exc:  # the venues could not be asked: that is not verified
        problems["venues"] = f"unreachable ({exc})"
        return problems
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key, ZERO), actual.get(key, ZERO)
        if want != have:
            problems[f"{key[0]}:{key[1]}"] = f"venue holds {have}, kept legs {want}"
    return problems
