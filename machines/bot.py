"""The bot machine: what the strategy loop is doing, one instance per process.

Positions are managed by their own machines in every bot state except STOPPED; the bot state
decides whether new entries may start (only in SCANNING) and records the run's phases.
Exits of positions while HALTED do not change the bot state (the breaker outranks the exit).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar

from machines.base import FsmModel, build_machine


class BotState(str, Enum):
    INITIALIZING = "initializing"  # settings loaded, connecting venues
    RECOVERING = "recovering"  # reconciliation against the venues (start-up or after an error)
    SCANNING = "scanning"  # capacity free, no breaker open: looking for entries
    OPENING = "opening"  # an entry is in flight
    MONITORING = "monitoring"  # at capacity: positions open, not scanning
    CLOSING = "closing"  # an exit is in progress
    HALTED = "halted"  # a global breaker is open: no entries, open positions still managed
    ERROR = "error"  # unexpected bot-level failure; reconciliation follows
    STOPPING = "stopping"  # signal received: flattening every position
    STOPPED = "stopped"  # terminal


B = BotState

# Every state except STOPPING/STOPPED: a signal may arrive at any time before the flatten.
_RUNNING = [B.INITIALIZING, B.RECOVERING, B.SCANNING, B.OPENING, B.MONITORING, B.CLOSING, B.HALTED, B.ERROR]

TRANSITIONS: list[dict[str, Any]] = [
    # recover: begin reconciliation (start-up, or retry after an error).
    {"trigger": "recover", "source": [B.INITIALIZING, B.ERROR], "dest": B.RECOVERING},
    # scan: capacity is free -> look for entries. From OPENING: the entry settled (or failed) below
    # capacity. From MONITORING: capacity freed without a bot-level exit (a repair closed a
    # position, or the limit was raised).
    {"trigger": "scan", "source": [B.RECOVERING, B.OPENING, B.MONITORING, B.CLOSING], "dest": B.SCANNING},
    # monitor: at capacity -> stop scanning. From SCANNING: capacity filled without an entry of
    # ours (a repair kept a position). From CLOSING: the exit finished but capacity is still full.
    {"trigger": "monitor", "source": [B.RECOVERING, B.SCANNING, B.OPENING, B.CLOSING], "dest": B.MONITORING},
    # begin_open: an entry decision passed the gates.
    {"trigger": "begin_open", "source": B.SCANNING, "dest": B.OPENING},
    # start_close: an exit rule fired. From SCANNING too: positions can be open below capacity.
    {"trigger": "start_close", "source": [B.SCANNING, B.MONITORING], "dest": B.CLOSING},
    # halt: a global breaker opened. From OPENING: the in-flight entry still settles or is repaired
    # by its position machine. From RECOVERING: a breaker latched before the restart is still open.
    {
        "trigger": "halt",
        "source": [B.RECOVERING, B.SCANNING, B.OPENING, B.MONITORING, B.CLOSING],
        "dest": B.HALTED,
    },
    # resume: every breaker closed again; scanning decides next whether capacity is full.
    {"trigger": "resume", "source": B.HALTED, "dest": B.SCANNING},
    # fault: unexpected bot-level failure (e.g. reconciliation could not complete).
    {
        "trigger": "fault",
        "source": [B.RECOVERING, B.SCANNING, B.OPENING, B.MONITORING, B.CLOSING, B.HALTED],
        "dest": B.ERROR,
    },
    # stop: SIGTERM/SIGINT. Not from STOPPING: further signals during the flatten are logged by the
    # shell, not obeyed (the trigger raises InvalidTransition).
    {"trigger": "stop", "source": _RUNNING, "dest": B.STOPPING},
    # shutdown_complete: the flatten finished (flat or not; the exit code reports which).
    {"trigger": "shutdown_complete", "source": B.STOPPING, "dest": B.STOPPED},
]

TERMINAL_STATES: frozenset[BotState] = frozenset({B.STOPPED})

_MACHINE = build_machine(name="bot", states=BotState, transitions=TRANSITIONS, initial=B.INITIALIZING)


class BotFsm(FsmModel):
    """The bot's run state. Triggers (keyword-only, return ``True`` or raise): ``recover``, ``scan``,
    ``monitor``, ``begin_open``, ``start_close``, ``halt``, ``resume``, ``fault``, ``stop``,
    ``shutdown_complete`` — each ``(*, reason: str, details: Mapping | None)``.
    """

    entity: ClassVar[str] = "bot"
    terminal_states: ClassVar[frozenset[Enum]] = TERMINAL_STATES  # type: ignore[assignment]
    _machine = _MACHINE
    _states = BotState

    state: BotState
    recover: Callable[..., bool]
    scan: Callable[..., bool]
    monitor: Callable[..., bool]
    begin_open: Callable[..., bool]
    start_close: Callable[..., bool]
    halt: Callable[..., bool]
    resume: Callable[..., bool]
    fault: Callable[..., bool]
    stop: Callable[..., bool]
    shutdown_complete: Callable[..., bool]

    def __init__(self) -> None:
        """A new bot in INITIALIZING (every run starts here)."""
        self._attach(B.INITIALIZING)

    @classmethod
    def restore(cls, state: BotState | str) -> BotFsm:
        """A bot in ``state`` without firing callbacks (tests and tooling; runs start INITIALIZING)."""
        restored_state = BotState(state)
        model = cls.__new__(cls)
        model._attach(restored_state)
        if restored_state in TERMINAL_STATES:
            model.detach()
        return model

    def __repr__(self) -> str:
        return f"BotFsm({self.state.value})"

    @property
    def entity_id(self) -> str:
        return "bot"

    @property
    def allows_entries(self) -> bool:
        """New positions may start only while SCANNING."""
        return self.state is B.SCANNING
