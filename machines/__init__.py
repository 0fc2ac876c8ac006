"""The finite-state machines: one literal transition table per kind, synchronous and pure."""

from machines.bot import BotFsm, BotState
from machines.errors import FsmError, InvalidTransition, TransitionRefused, UpdateRefused
from machines.position import PositionFsm, PositionState
from machines.records import TransitionRecord

__all__ = [
    "BotFsm",
    "BotState",
    "FsmError",
    "InvalidTransition",
    "PositionFsm",
    "PositionState",
    "TransitionRecord",
    "TransitionRefused",
    "UpdateRefused",
]
