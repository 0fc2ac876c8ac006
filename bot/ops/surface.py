"""Assemble the operator surface from settings and hand the supervisor its tasks.

The supervisor runs ``tasks()`` next to the market feed (so they stay up through the shutdown
flatten) under its restart policy as non-critical tasks: a crashed web server is restarted, and
one that keeps crashing is turned off without stopping trading. ``drain`` is called after the
shutdown so the shutdown result still reaches the notification services.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

import anyio
from loguru import logger

from bot.core.domain import ZERO
from bot.ops.bus import Bus
from bot.ops.journal import JournalTail, journal_cursor
from bot.ops.notify import Notice, Notifier, SendPolicy, apprise_sender, expand_urls, notice_for
from bot.ops.reader import ReadStore
from bot.settings import Settings
from bot.wiring import Wiring

if TYPE_CHECKING:
    from bot.app import Application
    from bot.ops.metrics import Metrics

DRAIN_DEADLINE_S = 10.0
MS_PER_DAY = 86_400_000

Task = tuple[str, Callable[[], Awaitable[None]]]


class OperatorSurface:
    """Journal tail, metrics, web server and notifier for one run (each only when configured)."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] = os.environ,
                 announce_out: TextIO = sys.stderr) -> None:
        self.settings = settings
        self.env = env
        self.announce_out = announce_out
        # prometheus-client costs ~0.3 s of import: only when /metrics can be served (web enabled)
        self.metrics: Metrics | None = None
        if settings.web.enabled:
            from bot.ops.metrics import Metrics

            self.metrics = Metrics()
        self.bus = Bus()
        self.app: Application | None = None
        self.tail: JournalTail | None = None
        self.reader: ReadStore | None = None
        self.notifier: Notifier | None = None
        self.web_url: str | None = None
        self._token: str | None = None
        self._token_generated = False
        urls = expand_urls(list(settings.notify.urls), env)
        if urls:
            n = settings.notify
            self.notifier = Notifier(apprise_sender(urls), SendPolicy(n.max_per_minute, n.dedupe_seconds),
                                     queue_size=n.queue_size, timeout_s=n.timeout_seconds,
                                     count=self._count_notification)
        if settings.web.enabled:
            from bot.web.auth import resolve_token

            self._token, self._token_generated = resolve_token(env)

    def _count_notification(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(outcome).inc()

    def wrap(self, wiring: Wiring) -> Wiring:
        """The wiring whose executor reports order latency to the metrics (unchanged without them)."""
        return self.metrics.timed_wiring(wiring) if self.metrics is not None else wiring

    def attach(self, app: "Application") -> None:
        """Bind to the application (before it starts: the journal is tailed from this point on)."""
        self.app = app
        if self.metrics is not None:
            self.metrics.attach(app)
        self.reader = ReadStore(app.wiring.db_path)
        self.tail = JournalTail(self.reader, self.bus, journal_cursor(app.wiring.db_path),
                                keep=self.settings.web.max_events)

    def tasks(self) -> list[Task]:
        """(name, loop) pairs for the supervisor."""
        assert self.tail is not None
        if self.notifier is None and not self.settings.web.enabled:
            return []  # nobody would read the journal or the metrics
        tasks: list[Task] = [("journal", self.tail.run)]
        if self.metrics is not None:
            tasks.append(("loop_lag", self.metrics.loop_lag_sampler))
        if self.notifier is not None:
            tasks += [("notifier", self.notifier.run), ("notices", self._notice_loop)]
            if self.settings.notify.daily_summary:
                tasks.append(("daily_summary", self._daily_summary_loop))
        if self.settings.web.enabled:
            tasks.append(("web", self._serve_web))
        return tasks

    async def drain(self) -> None:
        """After the shutdown: publish the last journal rows and deliver queued notices (bounded)."""
        try:
            with anyio.move_on_after(DRAIN_DEADLINE_S, shield=True):
                if self.tail is not None and self.tasks():
                    await self.tail.poll()
                    await anyio.sleep(0.05)  # let the notice loop turn the last rows into notices
                if self.notifier is not None:
                    if not await self.notifier.drain(DRAIN_DEADLINE_S):
                        logger.bind(kind="notify_drain").warning("notifications still pending at exit were dropped")
            if self.reader is not None:
                with anyio.CancelScope(shield=True):
                    await self.reader.aclose()
        except Exception as exc:  # the bot is already flat and stopped: report, never fail the exit
            logger.opt(exception=exc).bind(kind="surface_drain_failed").error(f"operator surface drain: {exc!r}")

    # ------------------------------------------------------------------ notifications
    def _describe(self, position_id: str) -> str:
        engine = self.app.engine if self.app is not None else None
        pos = engine.positions.get(position_id) if engine is not None else None
        if pos is None:
            return position_id
        return f"{pos.symbol} long {pos.long_venue} / short {pos.short_venue}"

    async def _notice_loop(self) -> None:
        assert self.notifier is not None
        with self.bus.subscribe(1024) as sub:
            async for entry in sub.receive:
                notice = notice_for(entry, self._describe)
                if notice is not None:
                    self.notifier.offer(notice)

    async def _daily_summary_loop(self) -> None:
        assert self.app is not None and self.notifier is not None
        day = self.app.clock.now_ms() // MS_PER_DAY
        while True:
            await anyio.sleep(1.0)
            today = self.app.clock.now_ms() // MS_PER_DAY
            if today != day:
                day = today
                self.notifier.offer(daily_summary(self.app, today))

    # ------------------------------------------------------------------ web
    async def _serve_web(self) -> None:
        from bot.web.server import WebContext, serve

        assert self.app is not None and self.reader is not None and self.tail is not None
        assert self._token is not None and self.metrics is not None
        web = self.settings.web
        ctx = WebContext(self.app, self.reader, self.tail, self.bus, self.metrics, self._token)
        await self.tail.prime()
        await serve(ctx, web.host, web.port, announce=self._announce)

    def _announce(self, url: str) -> None:
        first = self.web_url is None
        self.web_url = url
        if not first:
            logger.bind(kind="web_restarted").warning(f"dashboard restarted at {url}")
            return
        if self._token_generated:
            line = (f"dashboard: {url}?token={self._token}  (token generated for this run; set "
                    f"FUNDING_ARB_WEB_TOKEN to choose one)")
        else:
            line = f"dashboard: {url}?token=$FUNDING_ARB_WEB_TOKEN  (API: Authorization: Bearer <token>)"
        print(line, file=self.announce_out, flush=True)


def daily_summary(app: "Application", day_index: int) -> Notice:
    """Positions, funding, fees and net so far, for the day that just ended (UTC, bot clock)."""
    engine = app.engine
    funding = sum(engine.funding_usd.values(), ZERO) if engine else ZERO
    fees = sum(engine.fees_usd.values(), ZERO) if engine else ZERO
    open_count = len(engine.active_positions()) if engine else 0
    closed = (len(engine.positions) - open_count) if engine else 0
    date = datetime.fromtimestamp((day_index - 1) * MS_PER_DAY / 1000, tz=timezone.utc).date().isoformat()
    body = (f"{date}: {open_count} open, {closed} closed; funding ${_q(funding)}, fees ${_q(fees)}, "
            f"net ${_q(funding - fees)}; bot {app.bot.state.value}, trading {app.board.trading_state().value}")
    return Notice("daily_summary", f"Daily summary {date}", body, f"daily:{day_index}")


def _q(value: Decimal) -> str:
    return f"{value:.2f}"
