"""Clocks: the only place the application reads time.

``ScaledClock`` runs simulated UTC time ``speed`` times faster than the wall clock, so a paper run
can cover days of funding settlements in seconds; ``ManualClock`` is driven by tests and replays.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import anyio


def utc_now_ms() -> int:
    """Wall-clock UTC now in ms (used only to seed clocks and to stamp CLI-level events)."""
    return time.time_ns() // 1_000_000


def iso_utc(ts_ms: int) -> str:
    """``2026-03-01T00:00:00.000Z`` for a UTC ms timestamp."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def parse_iso_utc(text: str) -> int:
    """Parse an ISO-8601 time; a naive time is taken as UTC. Returns UTC ms."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class ScaledClock:
    """Simulated time = ``start_ts_ms`` + wall time elapsed x ``speed``."""

    def __init__(self, start_ts_ms: int, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start_ts_ms = start_ts_ms
        self.speed = speed
        self._wall_start_ns = time.monotonic_ns()

    def now_ms(self) -> int:
        elapsed_ns = time.monotonic_ns() - self._wall_start_ns
        return self.start_ts_ms + int(elapsed_ns * self.speed / 1_000_000)

    def wall_seconds(self, clock_seconds: float) -> float:
        """How long ``clock_seconds`` of simulated time takes on the wall."""
        return clock_seconds / self.speed

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds / self.speed))


class ManualClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, start_ts_ms: int) -> None:
        self._now_ms = start_ts_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.sleep(0)


class VirtualClock:
    """A backtest's clock: time moves only when the driver sets it, from event to event.

    ``sleep`` yields to other tasks without moving time: latency and back-off take no simulated
    time in a backtest (its books are synthetic and fills are immediate).
    """

    def __init__(self, start_ts_ms: int) -> None:
        self._now_ms = start_ts_ms

    def now_ms(self) -> int:
        return self._now_ms

    def set(self, ts_ms: int) -> None:
        """Jump to ``ts_ms``; time never runs backwards."""
        if ts_ms < self._now_ms:
            raise ValueError(f"virtual time cannot go back from {self._now_ms} to {ts_ms}")
        self._now_ms = ts_ms

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(0)
