"""The supervisor: one anyio task group running the bot, and the SIGTERM-safe shutdown.

Tasks: market feed (advance the market, settle funding, match resting orders), strategy loop
(exits, then entries), reconciliation loop, control loop (halt/resume/flatten requests written to
the database by ``python -m bot halt`` etc.), status line, optional duration timer. The signal
receiver stays open for the WHOLE run: the first SIGTERM/SIGINT starts the flatten, later ones are
logged and ignored (closing the receiver would restore the default handler and a second signal
would kill the process mid-flatten).

Restart policy, in one place (``_supervised``): a loop that raises is logged, recorded as an event
and restarted with backoff; five consecutive failures stop the bot through the normal flatten path
with exit code 1. Cancellation is never swallowed.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from loguru import logger

from bot.errors import EXIT_NOT_FLAT

EXIT_OK = 0
EXIT_LOOP_FAILED = 1
MAX_CONSECUTIVE_FAILURES = 5
STEP_BOUND_S = 2.0  # wall bound of a single bookkeeping step (an event write) outside the flatten


@dataclass(slots=True)
class StopRequest:
    reason: str
    exit_code: int = EXIT_OK


class Supervisor:
    """Runs the trading loops until a stop is requested, then flattens and returns the exit code."""

    def __init__(self, *, app: "App", duration_wall_s: float | None, deadline_wall_s: float,
                 on_signal: str = "flatten", surface: "Surface | None" = None) -> None:
        self.app = app
        self.on_signal = on_signal
        self.surface = surface
        self.duration_wall_s = duration_wall_s
        self.deadline_wall_s = deadline_wall_s
        self._stop = anyio.Event()
        self._stop_request: StopRequest | None = None
        self._flattening = False
        self._startup_scope: anyio.CancelScope | None = None
        self._market_scope: anyio.CancelScope | None = None  # the feed and status loops (they use the store)
        self._market_done = anyio.Event()

    def request_stop(self, reason: str, exit_code: int = EXIT_OK) -> None:
        if self._stop_request is None:
            self._stop_request = StopRequest(reason, exit_code)
            logger.bind(event="stop_requested").warning(f"stop requested: {reason}")
        self._stop.set()
        if self._startup_scope is not None:  # a slow start-up is interrupted, as a crash would be
            self._startup_scope.cancel()

    async def run(self) -> int:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._watch_signals, signals)
                if self.duration_wall_s is not None:  # counts from launch: start-up included
                    outer.start_soon(self._duration_timer, self.duration_wall_s)
                code = await self._run_until_stopped()
                outer.cancel_scope.cancel()
        # Closing the receiver restored the default handlers; a signal arriving during the
        # interpreter's teardown would then kill a process that is already flat. Ignore them.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        return code

    async def _watch_signals(self, signals: object) -> None:
        async for signum in signals:  # type: ignore[attr-defined]
            name = signal.Signals(signum).name
            if self._flattening or self._stop_request is not None:
                await self._event("signal_ignored", "warning", f"{name} received during shutdown: ignored")
                continue
            self.request_stop(f"signal {name}")
            await self._event("signal", "warning", f"{name} received: stopping entries and flattening")

    async def _event(self, kind: str, severity: str, message: str) -> None:
        """Record an event if the database is open yet (a signal may come during start-up)."""
        try:
            with anyio.move_on_after(STEP_BOUND_S, shield=True):
                await self.app.event(kind, severity, message)
        except Exception as exc:  # not open yet, or failing: the log line still tells it
            logger.bind(event=kind).warning(f"{message} (not recorded: {exc!r})")

    async def _run_until_stopped(self) -> int:
        """Market data (and the status line) keep running through the shutdown flatten: closing
        orders need live books, and a venue whose feed was down when the signal came must be
        seen coming back."""
        app = self.app
        async with anyio.create_task_group() as feeds:
            # Market-data streams of live venues run for the whole life of the app, shutdown included.
            for n, task in enumerate(getattr(getattr(app, "wiring", None), "background", ())):
                feeds.start_soon(self._supervised, f"market-data-{n}", task)
            try:
                return await self._run_app()
            finally:
                feeds.cancel_scope.cancel()

    async def _run_app(self) -> int:
        app = self.app
        with anyio.CancelScope() as startup:
            self._startup_scope = startup
            if self._stop_request is None:
                await app.start()
                if not app.heap.frozen:  # bot.heap: the start-up heap leaves the collector's walks
                    app.heap.freeze(raise_gen0=True)
        self._startup_scope = None
        if self._stop_request is not None and (startup.cancelled_caught or not self._started()):
            return await self._stop_during_startup()
        code = EXIT_LOOP_FAILED
        async with anyio.create_task_group() as market:
            market.start_soon(self._market_loops)
            for name, loop in (self.surface.tasks() if self.surface is not None else []):
                # operator surface (web, metrics, notifications): restarted, never stops trading
                market.start_soon(functools.partial(self._supervised, name, loop, critical=False))
            try:
                code = await self._trade_until_stopped()
            finally:
                if self.surface is not None:
                    await self.surface.drain()
                market.cancel_scope.cancel()
        return code

    async def _market_loops(self) -> None:
        """The feed and status loops, in a scope of their own: they run through the shutdown flatten
        (closing orders need the market) and are stopped by ``_stop_market_loops`` before the store
        closes (a feed step writing to a closed database failed the loop and the exit code)."""
        try:
            async with anyio.create_task_group() as loops:
                self._market_scope = loops.cancel_scope
                loops.start_soon(self._supervised, "feed", self.app.feed_loop)
                loops.start_soon(self._supervised, "status", self.app.status_loop)
        finally:
            self._market_done.set()

    async def _stop_market_loops(self) -> None:
        """Stop the feed and status loops and wait (bounded) until they have: called just before the
        app closes its store. A no-op when they never started."""
        if self._market_scope is None:
            return
        self._market_scope.cancel()
        with anyio.move_on_after(STEP_BOUND_S):
            await self._market_done.wait()

    async def _trade_until_stopped(self) -> int:
        app = self.app
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._supervised, "strategy", app.strategy_loop)
                tg.start_soon(self._supervised, "reconcile", app.reconcile_loop)
                tg.start_soon(self._supervised, "control", self._control_loop)
                await self._stop.wait()
                tg.cancel_scope.cancel()
        except BaseException as exc:  # whatever escaped, the positions are flattened before exiting
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                with anyio.CancelScope(shield=True):
                    await self._shutdown()
                raise
            logger.opt(exception=exc).bind(event="supervisor_failed").critical(f"supervisor failed: {exc!r}")
            self.request_stop(f"supervisor failed: {exc!r}", EXIT_LOOP_FAILED)
            with anyio.CancelScope(shield=True):
                return await self._shutdown()
        return await self._shutdown()

    async def _control_loop(self) -> None:
        while True:
            command = await self.app.poll_control()
            if command == "flatten":
                with anyio.CancelScope(shield=True):
                    await self.app.flatten("manual_flatten")
            await anyio.sleep(0.25)

    async def _duration_timer(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        self.request_stop("duration elapsed")
        await self._event("duration_elapsed", "info", f"--duration {seconds:g}s elapsed: stopping as on SIGTERM")

    def _end_status_line(self) -> None:
        """End the status view on its own line, so the final message starts a line."""
        end = getattr(self.app, "end_status", None)
        if end is None:
            return
        try:
            end()
        except (OSError, ValueError) as exc:  # a closed terminal: nothing to end
            logger.bind(event="status_off").debug(f"status line not ended: {exc!r}")

    def _started(self) -> bool:
        return getattr(self.app, "engine", None) is not None and getattr(self.app, "store", None) is not None

    async def _stop_during_startup(self) -> int:
        """A stop came before start-up finished: if the engine exists, the normal (bounded) flatten;
        otherwise nothing was traded by this run: close what was opened and say so."""
        self._flattening = True
        request = self._stop_request or StopRequest("stopped")
        if getattr(self.app, "engine", None) is not None and getattr(self.app, "store", None) is not None:
            await self._event("startup_interrupted", "warning", f"start-up interrupted: {request.reason}")
            return await self._shutdown()
        with anyio.move_on_after(STEP_BOUND_S, shield=True):
            await self.app.close()
        self._end_status_line()
        print(f"stopped during start-up ({request.reason}): nothing was traded by this run; positions from earlier "
              "runs, if any, were not touched and are restored at the next start", file=sys.stderr)
        return request.exit_code

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]], *, critical: bool = True) -> None:
        """``critical=False`` (operator surface): after N failures the task is turned off, trading goes on."""
        failures = 0
        while True:
            try:
                await loop()
                return
            except Exception as exc:  # restart policy: log, record, back off, give up after N
                failures += 1
                logger.opt(exception=exc).bind(event="task_failed", task=name).error(f"{name} loop failed: {exc!r}")
                await self.app.event("task_failed", "error", f"{name} loop failed ({failures}x): {exc!r}")
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    if not critical:
                        await self.app.event("task_off", "error", f"{name} failed {failures} times: turned off")
                        return
                    self.request_stop(f"{name} loop failed {failures} times", EXIT_LOOP_FAILED)
                    return
                await anyio.sleep(min(0.1 * 2**failures, 5.0))

    async def _shutdown(self) -> int:
        """Stop entries, cancel resting orders, close everything within the deadline, verify flat."""
        self._flattening = True
        request = self._stop_request or StopRequest("stopped")
        app = self.app
        # keep: an operator's stop (signal, --duration) leaves hedged positions for the restart;
        # a failure stop always flattens.
        if self.on_signal == "keep" and request.exit_code == EXIT_OK:
            with anyio.move_on_after(STEP_BOUND_S, shield=True):
                await app.bot_transition("stop", request.reason)
            return await self._shutdown_keeping(request)
        # The whole shutdown fits in deadline_seconds: the flatten gets most of it, the final
        # verification and the closing writes a bounded reserve each (see shutdown_budget).
        flatten_s, verify_s, close_s = shutdown_budget(self.deadline_wall_s)
        flat = False
        with anyio.move_on_after(flatten_s, shield=True) as scope:
            try:
                await app.bot_transition("stop", request.reason)
                await app.flatten("shutdown")
                flat = await app.verify_flat()
            except Exception as exc:  # still report what remains and exit non-zero below
                logger.opt(exception=exc).bind(event="flatten_failed").critical(f"flatten failed: {exc!r}")
        remaining: dict[str, str] = {"venues": f"not verified within {verify_s:g}s"}
        with anyio.move_on_after(verify_s, shield=True):
            remaining = await app.remaining_exposure()
        flat = flat and not remaining
        with anyio.move_on_after(close_s, shield=True):
            try:
                if scope.cancelled_caught:
                    await app.event("shutdown_deadline", "error", f"flatten did not finish within {flatten_s:g}s")
                if not flat:
                    await app.event("not_flat", "critical", f"NOT FLAT after shutdown: {exposure_text(remaining)}")
                await app.bot_transition("shutdown_complete", f"{'flat' if flat else 'NOT flat'} ({request.reason})")
            except Exception as exc:  # the exit code and the final line below still tell the truth
                logger.opt(exception=exc).bind(event="shutdown_record_failed").error(f"recording failed: {exc!r}")
            await self._stop_market_loops()
            await app.close()
        self._end_status_line()
        if flat:
            print(f"stopped: {request.reason}; all positions closed, flat on every venue", file=sys.stderr)
            return request.exit_code
        print(f"stopped: {request.reason}; NOT FLAT, still open: {exposure_text(remaining)}", file=sys.stderr)
        return EXIT_NOT_FLAT if request.exit_code == EXIT_OK else request.exit_code

    async def _shutdown_keeping(self, request: StopRequest) -> int:
        """``shutdown.on_signal = "keep"``: close only what is not hedged; verify the venues hold
        exactly the kept legs; exit 0 (kept as promised) or EXIT_NOT_FLAT (something else is open)."""
        app = self.app
        problems: dict[str, str] = {"keep": "did not finish"}
        with anyio.move_on_after(self.deadline_wall_s, shield=True):
            try:
                problems = await app.keep_hedged()
            except Exception as exc:  # reported below; exit non-zero
                logger.opt(exception=exc).bind(event="keep_failed").critical(f"keep shutdown failed: {exc!r}")
        with anyio.CancelScope(shield=True):
            kept = await app.open_position_ids()
            if problems:
                await app.event("not_flat", "critical", f"keep shutdown: unexpected exposure {exposure_text(problems)}")
            await app.bot_transition("shutdown_complete", f"kept {len(kept)} hedged position(s) open "
                                     f"({request.reason})" if not problems else f"NOT as kept ({request.reason})")
            await self._stop_market_loops()
            await app.close()
        app.end_status()
        if problems:
            print(f"stopped: {request.reason}; NOT as kept, unexpected exposure: {exposure_text(problems)}",
                  file=sys.stderr)
            return EXIT_NOT_FLAT
        print(f"stopped: {request.reason}; kept {len(kept)} hedged position(s) open (shutdown.on_signal = keep): "
              f"{', '.join(kept) or 'none'}; the next start resumes them", file=sys.stderr)
        return request.exit_code


def exposure_text(remaining: dict[str, str]) -> str:
    """``{"bybit:BTC": "-0.01", "position:ab12": "closing"}`` as ``bybit:BTC -0.01; position:ab12 closing``."""
    return "; ".join(f"{what} {state}" for what, state in remaining.items())


def shutdown_budget(deadline_s: float) -> tuple[float, float, float]:
    """Split ``deadline_s`` into (flatten, final verification, closing writes) wall seconds.

    The reserve is a fifth of the deadline, at most 10 s: with the default 30 s the flatten gets
    24 s, verification 3.6 s and the closing writes 2.4 s, so the process ends within 30 s.
    """
    reserve = min(10.0, deadline_s * 0.2)
    return deadline_s - reserve, reserve * 0.6, reserve * 0.4


class App(Protocol):
    """What the supervisor drives; implemented by bot.app.Application in every mode."""

    async def start(self) -> None: ...
    async def feed_loop(self) -> None: ...
    async def strategy_loop(self) -> None: ...
    async def reconcile_loop(self) -> None: ...
    async def status_loop(self) -> None: ...
    async def poll_control(self) -> str | None: ...
    async def flatten(self, reason: str) -> None: ...
    async def verify_flat(self) -> bool: ...
    async def remaining_exposure(self) -> dict[str, str]: ...
    async def event(self, kind: str, severity: str, message: str) -> None: ...
    async def bot_transition(self, trigger: str, reason: str) -> None: ...
    async def close(self) -> None: ...
    async def keep_hedged(self) -> dict[str, str]: ...
    async def open_position_ids(self) -> list[str]: ...
    def end_status(self) -> None: ...


class Surface(Protocol):
    """The operator surface (``bot.ops.surface``): extra tasks, drained after the shutdown."""

    def tasks(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]: ...
    async def drain(self) -> None: ...

