"""Circuit breakers as immutable value objects.

Every method that can change a breaker returns the NEW breaker (or board) plus the
``BreakerEvent`` records of the state changes it made, for the caller to persist and log.
Time is always passed in (``now_ts_ms``); nothing here reads a clock.

Two shapes:

* ``CircuitBreaker``: the classic CLOSED -> OPEN -> HALF_OPEN -> CLOSED machine, driven by
  request outcomes. Used per venue (API errors) and for the unhedged-window breaker.
* ``SwitchBreaker``: open or closed, set by a level condition or an operator. Used for stale
  market data per venue, drawdown (latched: stays open until an operator resets it) and the
  manual kill switch (open until resumed).

``BreakerBoard`` holds them all. Its derived trading state:

* HALTED when the manual kill switch or the drawdown breaker is open;
* REDUCING when the unhedged breaker is OPEN, or when every venue's market data is stale
  (no fresh prices means no new exposure; closes still go through);
* ACTIVE otherwise. A HALF_OPEN unhedged breaker allows entries: the next entry is the probe.

Per-venue breakers (errors, stale data) do not change the global state; they block entries on
that venue through ``open_venues()`` -> ``EntryContext.venue_breakers_open``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from risk.trading_state import TradingState

HUNDRED = Decimal(100)

MANUAL = "manual"
DRAWDOWN = "drawdown"
UNHEDGED = "unhedged"
STALE_ALL = "stale_data"


def venue_breaker_name(venue: str) -> str:
    return f"venue_errors:{venue}"


def stale_breaker_name(venue: str) -> str:
    return f"stale_data:{venue}"


class BreakerState(StrEnum):
    CLOSED = "closed"  # requests flow
    OPEN = "open"  # requests blocked
    HALF_OPEN = "half_open"  # one probe request allowed; its outcome closes or re-opens


class BreakerEventKind(StrEnum):
    OPENED = "breaker_opened"
    HALF_OPENED = "breaker_half_opened"
    CLOSED = "breaker_closed"


_KIND_FOR_STATE = {
    BreakerState.OPEN: BreakerEventKind.OPENED,
    BreakerState.HALF_OPEN: BreakerEventKind.HALF_OPENED,
    BreakerState.CLOSED: BreakerEventKind.CLOSED,
}


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One breaker state change, ready to persist."""

    kind: BreakerEventKind
    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    ts_ms: int


def _event(name: str, from_state: BreakerState, to_state: BreakerState, reason: str, ts_ms: int) -> BreakerEvent:
    return BreakerEvent(_KIND_FOR_STATE[to_state], name, from_state, to_state, reason, ts_ms)


@dataclass(frozen=True, slots=True)
class ErrorBreakerConfig:
    """When an outcome-driven breaker opens and how long it stays open.

    Opens on ``failure_threshold`` consecutive failures, or when more than ``max_error_rate``
    (a fraction, 0.5 = 50 %) of the outcomes within the last ``error_rate_window_ms`` failed and
    there were at least ``error_rate_min_samples`` of them. ``max_error_rate`` None disables
    the rate rule. After ``cooldown_ms`` open, it half-opens.
    """

    failure_threshold: int = 5
    max_error_rate: Decimal | None = Decimal("0.5")
    error_rate_window_ms: int = 60_000
    error_rate_min_samples: int = 10
    cooldown_ms: int = 60_000

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.max_error_rate is not None and not Decimal(0) <= self.max_error_rate <= 1:
            raise ValueError("max_error_rate must be within [0, 1]")
        if self.error_rate_window_ms < 0 or self.cooldown_ms < 0 or self.error_rate_min_samples < 1:
            raise ValueError("window, cooldown must not be negative; min samples at least 1")


class BreakerUpdate(NamedTuple):
    breaker: "CircuitBreaker"
    events: tuple[BreakerEvent, ...]


class Admission(NamedTuple):
    allowed: bool
    breaker: "CircuitBreaker"
    events: tuple[BreakerEvent, ...]


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Outcome-driven breaker. Time-based transitions (OPEN -> HALF_OPEN) are applied by
    ``tick`` and at the start of every other method.

    In HALF_OPEN, ``allows_request`` lets one probe through (another after ``cooldown_ms`` if
    its outcome never arrives) and the next recorded outcome decides: success closes, failure
    re-opens. Outcomes recorded while OPEN are late answers to requests sent before it opened
    and are ignored.
    """

    name: str
    config: ErrorBreakerConfig = ErrorBreakerConfig()
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    recent: tuple[tuple[int, bool], ...] = ()  # (ts_ms, failed) within the error-rate window
    opened_ts_ms: int | None = None
    probe_ts_ms: int | None = None
    reason: str = ""

    @property
    def blocks_requests(self) -> bool:
        """True when OPEN or HALF_OPEN: ordinary traffic should not be sent."""
        return self.state is not BreakerState.CLOSED

    def tick(self, now_ts_ms: int) -> BreakerUpdate:
        """Half-open once the cooldown has elapsed."""
        if self.state is BreakerState.OPEN and self.opened_ts_ms is not None:
            if now_ts_ms - self.opened_ts_ms >= self.config.cooldown_ms:
                reason = f"cooldown {self.config.cooldown_ms} ms elapsed"
                new = replace(self, state=BreakerState.HALF_OPEN, probe_ts_ms=None, reason=reason)
                return BreakerUpdate(new, (_event(self.name, self.state, new.state, reason, now_ts_ms),))
        return BreakerUpdate(self, ())

    def allows_request(self, now_ts_ms: int) -> Admission:
        """May a request be sent now? In HALF_OPEN the one allowed request is the probe."""
        current, events = self.tick(now_ts_ms)
        if current.state is BreakerState.CLOSED:
            return Admission(True, current, events)
        if current.state is BreakerState.OPEN:
            return Admission(False, current, events)
        probe_lost = (
            current.probe_ts_ms is not None and now_ts_ms - current.probe_ts_ms >= current.config.cooldown_ms
        )
        if current.probe_ts_ms is None or probe_lost:
            return Admission(True, replace(current, probe_ts_ms=now_ts_ms), events)
        return Admission(False, current, events)

    def record_success(self, now_ts_ms: int) -> BreakerUpdate:
        current, events = self.tick(now_ts_ms)
        if current.state is BreakerState.OPEN:
            return BreakerUpdate(current, events)
        if current.state is BreakerState.HALF_OPEN:
            return current._close(now_ts_ms, "probe succeeded", events)
        recent = current._window(now_ts_ms) + ((now_ts_ms, False),)
        return BreakerUpdate(replace(current, consecutive_failures=0, recent=recent), events)

    def record_failure(self, now_ts_ms: int, reason: str = "") -> BreakerUpdate:
        current, events = self.tick(now_ts_ms)
        if current.state is BreakerState.OPEN:
            return BreakerUpdate(current, events)
        if current.state is BreakerState.HALF_OPEN:
            return current._open(now_ts_ms, _join("probe failed", reason), events)
        failures = current.consecutive_failures + 1
        recent = current._window(now_ts_ms) + ((now_ts_ms, True),)
        updated = replace(current, consecutive_failures=failures, recent=recent)
        cfg = current.config
        if failures >= cfg.failure_threshold:
            return updated._open(now_ts_ms, _join(f"{failures} consecutive failures", reason), events)
        failed = sum(1 for _, is_failure in recent if is_failure)
        if (
            cfg.max_error_rate is not None
            and len(recent) >= cfg.error_rate_min_samples
            and failed > cfg.max_error_rate * len(recent)
        ):
            why = f"{failed}/{len(recent)} failed within {cfg.error_rate_window_ms} ms > max rate {cfg.max_error_rate}"
            return updated._open(now_ts_ms, _join(why, reason), events)
        return BreakerUpdate(updated, events)

    def _window(self, now_ts_ms: int) -> tuple[tuple[int, bool], ...]:
        oldest = now_ts_ms - self.config.error_rate_window_ms
        return tuple(entry for entry in self.recent if entry[0] > oldest)

    def _open(self, now_ts_ms: int, reason: str, events: tuple[BreakerEvent, ...]) -> BreakerUpdate:
        new = replace(self, state=BreakerState.OPEN, opened_ts_ms=now_ts_ms, probe_ts_ms=None, reason=reason)
        return BreakerUpdate(new, events + (_event(self.name, self.state, new.state, reason, now_ts_ms),))

    def _close(self, now_ts_ms: int, reason: str, events: tuple[BreakerEvent, ...]) -> BreakerUpdate:
        new = replace(
            self,
            state=BreakerState.CLOSED,
            consecutive_failures=0,
            recent=(),
            opened_ts_ms=None,
            probe_ts_ms=None,
            reason=reason,
        )
        return BreakerUpdate(new, events + (_event(self.name, self.state, new.state, reason, now_ts_ms),))


def _join(what: str, reason: str) -> str:
    return f"{what}: {reason}" if reason else what


class SwitchUpdate(NamedTuple):
    breaker: "SwitchBreaker"
    events: tuple[BreakerEvent, ...]


@dataclass(frozen=True, slots=True)
class SwitchBreaker:
    """A breaker that is simply open or closed; setting the state it already has is a no-op."""

    name: str
    is_open: bool = False
    reason: str = ""
    since_ts_ms: int | None = None

    @property
    def state(self) -> BreakerState:
        return BreakerState.OPEN if self.is_open else BreakerState.CLOSED

    def set_open(self, now_ts_ms: int, reason: str) -> SwitchUpdate:
        return self._set(True, now_ts_ms, reason)

    def set_closed(self, now_ts_ms: int, reason: str) -> SwitchUpdate:
        return self._set(False, now_ts_ms, reason)

    def _set(self, is_open: bool, now_ts_ms: int, reason: str) -> SwitchUpdate:
        if is_open == self.is_open:
            return SwitchUpdate(self, ())
        new = SwitchBreaker(self.name, is_open, reason, now_ts_ms)
        return SwitchUpdate(new, (_event(self.name, self.state, new.state, reason, now_ts_ms),))


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Every breaker threshold (``max_drawdown_pct`` is a percent: 10 = 10 %)."""

    venue_failure_threshold: int = 5
    venue_max_error_rate: Decimal | None = Decimal("0.5")
    venue_error_window_ms: int = 60_000
    venue_error_min_samples: int = 10
    venue_cooldown_ms: int = 60_000
    stale_quote_max_age_ms: int = 30_000
    max_drawdown_pct: Decimal = Decimal("10")
    unhedged_limit_ms: int = 5_000
    unhedged_cooldown_ms: int = 1_800_000

    def __post_init__(self) -> None:
        if not Decimal(0) < self.max_drawdown_pct <= HUNDRED:
            raise ValueError("max_drawdown_pct must be within (0, 100]")
        if self.stale_quote_max_age_ms < 0 or self.unhedged_limit_ms < 0 or self.unhedged_cooldown_ms < 0:
            raise ValueError("durations must not be negative")

    @property
    def venue_error_config(self) -> ErrorBreakerConfig:
        return ErrorBreakerConfig(
            failure_threshold=self.venue_failure_threshold,
            max_error_rate=self.venue_max_error_rate,
            error_rate_window_ms=self.venue_error_window_ms,
            error_rate_min_samples=self.venue_error_min_samples,
            cooldown_ms=self.venue_cooldown_ms,
        )

    @property
    def unhedged_config(self) -> ErrorBreakerConfig:
        """One over-limit window opens it; the rate rule does not apply."""
        return ErrorBreakerConfig(failure_threshold=1, max_error_rate=None, cooldown_ms=self.unhedged_cooldown_ms)


class BoardUpdate(NamedTuple):
    board: "BreakerBoard"
    events: tuple[BreakerEvent, ...]


class BoardAdmission(NamedTuple):
    allowed: bool
    board: "BreakerBoard"
    events: tuple[BreakerEvent, ...]


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


class DataFreshness:
    """The latest market-data timestamp seen per venue: O(1) per update, updated in place.

    Timestamps only ever move forward (a late, older quote never lowers them), so every board
    derived from one ``BreakerBoard.create`` shares one record: recording a quote whose venue's
    stale breaker does not change state copies nothing.
    """

    __slots__ = ("_latest", "view")

    def __init__(self, latest: Mapping[str, int] | None = None) -> None:
        self._latest: dict[str, int] = dict(latest or {})
        self.view: Mapping[str, int] = MappingProxyType(self._latest)

    def record(self, venue: str, ts_ms: int) -> int:
        """Note a quote stamped ``ts_ms`` from ``venue``; returns the venue's latest timestamp."""
        previous = self._latest.get(venue)
        if previous is None or ts_ms > previous:
            self._latest[venue] = ts_ms
            return ts_ms
        return previous

    def get(self, venue: str) -> int | None:
        return self._latest.get(venue)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataFreshness) and self._latest == other._latest

    def __repr__(self) -> str:
        return f"DataFreshness({self._latest!r})"


@dataclass(frozen=True, slots=True)
class BreakerBoard:
    """All breakers together. Build with ``BreakerBoard.create``; see the module docstring.

    A venue whose market data has never been seen is stale (its stale breaker starts open with
    no event): entries on it wait for the first fresh quote.
    """

    settings: BreakerSettings
    venue_errors: Mapping[str, CircuitBreaker] = field(default_factory=dict)
    stale: Mapping[str, SwitchBreaker] = field(default_factory=dict)
    freshness: DataFreshness = field(default_factory=DataFreshness)
    drawdown: SwitchBreaker = SwitchBreaker(DRAWDOWN)
    peak_equity_usd: Decimal | None = None
    unhedged: CircuitBreaker = CircuitBreaker(UNHEDGED)
    manual: SwitchBreaker = SwitchBreaker(MANUAL)

    def __post_init__(self) -> None:
        for name in ("venue_errors", "stale"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):  # already frozen when derived by ``replace``
                object.__setattr__(self, name, _frozen(value))

    @classmethod
    def create(cls, venues: Iterable[str], settings: BreakerSettings) -> "BreakerBoard":
        venues = tuple(venues)
        return cls(
            settings=settings,
            venue_errors={v: CircuitBreaker(venue_breaker_name(v), settings.venue_error_config) for v in venues},
            stale={v: SwitchBreaker(stale_breaker_name(v), True, "no quote yet") for v in venues},
            unhedged=CircuitBreaker(UNHEDGED, settings.unhedged_config),
        )

    # ---- queries -------------------------------------------------------------------------

    @property
    def last_quote_ts_ms(self) -> Mapping[str, int]:
        """The latest market-data timestamp per venue (read-only view)."""
        return self.freshness.view

    @property
    def venues(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.venue_errors) | set(self.stale)))

    @property
    def all_venues_stale(self) -> bool:
        return bool(self.stale) and all(b.is_open for b in self.stale.values())

    def global_open(self) -> list[str]:
        """Reasons that block entries everywhere, each as ``"<breaker name>: <reason>"``."""
        reasons = []
        if self.manual.is_open:
            reasons.append(f"{MANUAL}: {self.manual.reason}")
        if self.drawdown.is_open:
            reasons.append(f"{DRAWDOWN}: {self.drawdown.reason}")
        if self.unhedged.state is BreakerState.OPEN:
            reasons.append(f"{UNHEDGED}: {self.unhedged.reason}")
        if self.all_venues_stale:
            reasons.append(f"{STALE_ALL}: every venue is stale")
        return reasons

    def venue_open_reasons(self, venue: str) -> list[str]:
        """Reasons that block entries on ``venue``. An unknown venue is stale."""
        reasons = []
        errors = self.venue_errors.get(venue)
        if errors is not None and errors.blocks_requests:
            reasons.append(f"{errors.name}: {errors.state.value}: {errors.reason}")
        stale = self.stale.get(venue)
        if stale is None:
            reasons.append(f"{stale_breaker_name(venue)}: never quoted")
        elif stale.is_open:
            reasons.append(f"{stale.name}: {stale.reason}")
        return reasons

    def venue_open(self, venue: str) -> bool:
        return bool(self.venue_open_reasons(venue))

    def open_venues(self) -> frozenset[str]:
        """Known venues with an open (or half-open) breaker: feed to ``EntryContext``."""
        return frozenset(v for v in self.venues if self.venue_open(v))

    def trading_state(self) -> TradingState:
        if self.manual.is_open or self.drawdown.is_open:
            return TradingState.HALTED
        if self.unhedged.state is BreakerState.OPEN or self.all_venues_stale:
            return TradingState.REDUCING
        return TradingState.ACTIVE

    # ---- transitions ---------------------------------------------------------------------

    def tick(self, now_ts_ms: int) -> BoardUpdate:
        """Apply time-driven changes: error-breaker cooldowns and quote staleness."""
        events: list[BreakerEvent] = []
        venue_errors = {}
        for venue, breaker in self.venue_errors.items():
            venue_errors[venue], evs = breaker.tick(now_ts_ms)
            events.extend(evs)
        stale = {}
        for venue, breaker in self.stale.items():
            stale[venue], evs = self._stale_check(venue, breaker, self.freshness.get(venue), now_ts_ms)
            events.extend(evs)
        unhedged, evs = self.unhedged.tick(now_ts_ms)
        events.extend(evs)
        board = replace(self, venue_errors=venue_errors, stale=stale, unhedged=unhedged)
        return BoardUpdate(board, tuple(events))

    def venue_allows_request(self, venue: str, now_ts_ms: int) -> BoardAdmission:
        """Ask the venue's error breaker before an API call (a HALF_OPEN breaker admits the probe)."""
        allowed, breaker, events = self._venue_breaker(venue).allows_request(now_ts_ms)
        return BoardAdmission(allowed, self._with_venue_breaker(venue, breaker), events)

    def record_venue_success(self, venue: str, now_ts_ms: int) -> BoardUpdate:
        breaker, events = self._venue_breaker(venue).record_success(now_ts_ms)
        return BoardUpdate(self._with_venue_breaker(venue, breaker), events)

    def record_venue_failure(self, venue: str, now_ts_ms: int, reason: str = "") -> BoardUpdate:
        breaker, events = self._venue_breaker(venue).record_failure(now_ts_ms, reason)
        return BoardUpdate(self._with_venue_breaker(venue, breaker), events)

    def record_quote(self, venue: str, quote_ts_ms: int, now_ts_ms: int) -> BoardUpdate:
        """A quote (funding or book) from ``venue`` stamped ``quote_ts_ms`` arrived.

        O(1) unless the venue's stale breaker changes state: the timestamp goes into the shared
        ``freshness`` record and the same board is returned."""
        latest = self.freshness.record(venue, quote_ts_ms)
        current = self.stale.get(venue)
        breaker = current if current is not None else SwitchBreaker(stale_breaker_name(venue), True, "no quote yet")
        updated, events = self._stale_check(venue, breaker, latest, now_ts_ms)
        if updated is current:
            return BoardUpdate(self, events)
        return BoardUpdate(replace(self, stale={**self.stale, venue: updated}), events)

    def record_equity(self, equity_usd: Decimal, now_ts_ms: int) -> BoardUpdate:
        """Track peak equity (all venues together); open the drawdown breaker when equity falls
        below peak x (1 - max_drawdown_pct / 100). It stays open until ``reset_drawdown``."""
        peak = equity_usd if self.peak_equity_usd is None else max(self.peak_equity_usd, equity_usd)
        floor = peak * (1 - self.settings.max_drawdown_pct / HUNDRED)
        drawdown, events = self.drawdown, ()
        if equity_usd < floor:
            reason = (
                f"equity {equity_usd} USD < {floor} USD"
                f" (peak {peak} USD - {self.settings.max_drawdown_pct}%)"
            )
            drawdown, events = self.drawdown.set_open(now_ts_ms, reason)
        return BoardUpdate(replace(self, peak_equity_usd=peak, drawdown=drawdown), events)

    def reset_drawdown(self, equity_usd: Decimal, now_ts_ms: int, reason: str) -> BoardUpdate:
        """Operator action: accept the loss, restart the peak at ``equity_usd`` and close."""
        drawdown, events = self.drawdown.set_closed(now_ts_ms, reason)
        return BoardUpdate(replace(self, peak_equity_usd=equity_usd, drawdown=drawdown), events)

    def record_unhedged_window(self, window_ms: int, now_ts_ms: int, detail: str = "") -> BoardUpdate:
        """An entry or exit finished with ``window_ms`` of unhedged exposure: within the limit
        it counts as a success (closing a HALF_OPEN breaker), beyond it as a failure."""
        limit_ms = self.settings.unhedged_limit_ms
        if window_ms > limit_ms:
            reason = _join(f"unhedged {window_ms} ms > limit {limit_ms} ms", detail)
            unhedged, events = self.unhedged.record_failure(now_ts_ms, reason)
        else:
            unhedged, events = self.unhedged.record_success(now_ts_ms)
        return BoardUpdate(replace(self, unhedged=unhedged), events)

    def kill(self, now_ts_ms: int, reason: str) -> BoardUpdate:
        """Manual kill switch: HALTED until ``resume``."""
        manual, events = self.manual.set_open(now_ts_ms, reason)
        return BoardUpdate(replace(self, manual=manual), events)

    def resume(self, now_ts_ms: int, reason: str) -> BoardUpdate:
        manual, events = self.manual.set_closed(now_ts_ms, reason)
        return BoardUpdate(replace(self, manual=manual), events)

    # ---- helpers -------------------------------------------------------------------------

    def _venue_breaker(self, venue: str) -> CircuitBreaker:
        existing = self.venue_errors.get(venue)
        if existing is not None:
            return existing
        return CircuitBreaker(venue_breaker_name(venue), self.settings.venue_error_config)

    def _with_venue_breaker(self, venue: str, breaker: CircuitBreaker) -> "BreakerBoard":
        return replace(self, venue_errors={**self.venue_errors, venue: breaker})

    def _stale_check(
        self, venue: str, breaker: SwitchBreaker, last_ts_ms: int | None, now_ts_ms: int
    ) -> SwitchUpdate:
        max_age_ms = self.settings.stale_quote_max_age_ms
        if last_ts_ms is None:
            return breaker.set_open(now_ts_ms, "no quote yet")
        age_ms = now_ts_ms - last_ts_ms
        if age_ms > max_age_ms:
            return breaker.set_open(now_ts_ms, f"no fresh quote for {age_ms} ms > {max_age_ms} ms")
        return breaker.set_closed(now_ts_ms, f"fresh quote, age {age_ms} ms")
