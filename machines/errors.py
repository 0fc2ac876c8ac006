"""Errors raised by the state machines. Every one leaves the model unchanged."""

from __future__ import annotations

from enum import Enum

from transitions.core import MachineError


class FsmError(MachineError):
    """Base class: catching ``transitions.core.MachineError`` also catches these."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidTransition(FsmError):
    """The trigger is not in the table for the model's current state (or the model is detached)."""

    def __init__(self, entity: str, entity_id: str, state: Enum, trigger: str, why: str = "") -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.trigger = trigger
        suffix = f" ({why})" if why else ""
        super().__init__(
            f"{entity} {entity_id}: trigger {trigger!r} is not allowed from state {state.value!r}{suffix}"
        )


class TransitionRefused(FsmError):
    """The trigger is legal from this state but every guard on its edges failed."""

    def __init__(self, entity: str, entity_id: str, state: Enum, trigger: str, facts: str) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.trigger = trigger
        super().__init__(
            f"{entity} {entity_id}: trigger {trigger!r} refused in state {state.value!r}: "
            f"no guard passed ({facts})"
        )


class UpdateRefused(FsmError):
    """A bookkeeping method (not a trigger) refused the change, e.g. a leg would go negative."""
