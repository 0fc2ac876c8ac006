"""The supervisor stops the feed and status loops before the app closes its store.

They run through the shutdown flatten (closing orders need the market), but a feed step that wrote to
the database after ``close()`` failed its loop, which turned a clean stop into a failure exit code
(seen as a flaky tests/test_e2e_shutdown_keep.py on a loaded machine).
"""

from __future__ import annotations

import anyio
import pytest

from bot.heap import HeapFreeze
from bot.supervisor import Supervisor

pytestmark = pytest.mark.anyio


class _StoreUsingApp:
    """The app surface the supervisor drives; its feed and status loops use the 'store' all the time
    (one write per event-loop turn) and fail once it is closed, as the real ones do."""

    def __init__(self) -> None:
        self.heap = HeapFreeze()
        self.engine = object()
        self.store = object()
        self.closed = False
        self.used_after_close: list[str] = []
        self.events: list[str] = []

    def _use_store(self, loop: str) -> None:
        if self.closed:
            self.used_after_close.append(loop)
            raise RuntimeError("Cannot operate on a closed database.")

    async def _busy(self, loop: str) -> None:
        while True:
            self._use_store(loop)
            await anyio.lowlevel.checkpoint()

    async def start(self) -> None:
        return None

    async def feed_loop(self) -> None:
        await self._busy("feed")

    async def status_loop(self) -> None:
        await self._busy("status")

    async def strategy_loop(self) -> None:
        await anyio.sleep_forever()

    async def reconcile_loop(self) -> None:
        await anyio.sleep_forever()

    async def poll_control(self) -> None:
        return None

    async def event(self, kind: str, severity: str, message: str) -> None:
        self.events.append(kind)

    async def bot_transition(self, trigger: str, reason: str) -> None:
        await anyio.sleep(0.01)  # the loops get turns during the shutdown's writes

    async def flatten(self, reason: str) -> None:
        await anyio.sleep(0.05)

    async def verify_flat(self) -> bool:
        return True

    async def remaining_exposure(self) -> dict[str, str]:
        return {}

    async def keep_hedged(self) -> dict[str, str]:
        await anyio.sleep(0.05)
        return {}

    async def open_position_ids(self) -> list[str]:
        return []

    async def close(self) -> None:
        await anyio.sleep(0.01)
        self.closed = True
        for _ in range(20):  # what a loop still running would do now
            await anyio.lowlevel.checkpoint()

    def end_status(self) -> None:
        return None


@pytest.mark.parametrize("on_signal", ["flatten", "keep"])
async def test_the_market_loops_stop_before_the_store_closes(on_signal: str) -> None:
    app = _StoreUsingApp()
    supervisor = Supervisor(app=app, duration_wall_s=0.2, deadline_wall_s=5, on_signal=on_signal)  # type: ignore[arg-type]
    with anyio.fail_after(30):
        code = await supervisor.run()
    assert app.closed
    assert app.used_after_close == [], f"loops used the closed store: {app.used_after_close}"
    assert code == 0
