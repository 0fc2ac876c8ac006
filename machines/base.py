"""Shared construction for the machines: one strict ``transitions.Machine`` per kind, many models.

Each kind builds its machine once at import (``build_machine``); every model instance joins it with
``add_model`` and leaves it with ``detach()`` (automatic on entering a terminal state), so closed
models do not accumulate in ``Machine.models``.

Strictness on top of plain ``transitions``: triggers take keyword arguments only
(``reason: str`` required, ``details: Mapping`` optional); a trigger not in the table for the
current state raises ``InvalidTransition``; a legal trigger whose guards all fail raises
``TransitionRefused`` instead of returning ``False``. Successful triggers return ``True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, ClassVar

from transitions import Event, Machine
from transitions.core import EventData

from machines.errors import InvalidTransition, TransitionRefused
from machines.records import TransitionRecord

_TRIGGER_KWARGS = frozenset({"reason", "details"})


class StrictEvent(Event):
    """An event that raises instead of returning ``False`` and validates its keyword arguments."""

    def trigger(self, model: Any, *args: Any, **kwargs: Any) -> bool:
        if args:
            raise TypeError(f"{self.name}() takes keyword arguments only: reason=..., details=...")
        unknown = set(kwargs) - _TRIGGER_KWARGS
        if unknown:
            raise TypeError(f"{self.name}() got unexpected keyword arguments {sorted(unknown)}")
        reason = kwargs.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise TypeError(f"{self.name}() requires reason: a non-empty str")
        raw_details = kwargs.get("details")
        if raw_details is not None and not isinstance(raw_details, Mapping):
            raise TypeError(f"{self.name}() details must be a mapping, got {type(raw_details).__name__}")
        details = dict(raw_details or {})
        clash = set(details) & model.reserved_detail_keys
        if clash:
            raise ValueError(f"{self.name}() details may not set reserved keys {sorted(clash)}")

        state = self.machine.get_model_state(model).value  # the state Enum member
        if not model.is_attached:
            raise InvalidTransition(model.entity, model.entity_id, state, self.name, "model is detached")
        if state.name not in self.transitions:
            raise InvalidTransition(model.entity, model.entity_id, state, self.name)
        if not super().trigger(model, reason=reason, details=details):
            raise TransitionRefused(model.entity, model.entity_id, state, self.name, model.describe_facts())
        return True


class StrictMachine(Machine):
    """``Machine`` whose events are ``StrictEvent``."""

    event_cls = StrictEvent


def build_machine(
    *, name: str, states: type[Enum], transitions: Iterable[Mapping[str, Any]], initial: Enum
) -> StrictMachine:
    """Build the one shared machine of a kind. Models join later via ``FsmModel._attach``."""
    return StrictMachine(
        model=None,
        states=list(states),
        transitions=[dict(row) for row in transitions],
        initial=initial,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
        queued=False,
        after_state_change="_after_state_change",
        name=name,
    )


class FsmModel:
    """Base for machine models: outbox of ``TransitionRecord``, attach/detach, recording callback.

    Subclasses set the class attributes and may override ``_on_transition`` (field updates that go
    with a state change, run before the record is made) and ``_snapshot`` (facts copied into each
    record's ``details``).
    """

    entity: ClassVar[str]
    terminal_states: ClassVar[frozenset[Enum]]
    reserved_detail_keys: ClassVar[frozenset[str]] = frozenset()
    _machine: ClassVar[StrictMachine]
    _states: ClassVar[type[Enum]]

    entity_id: str  # each subclass provides it (a property naming the position, or "bot")
    state: Any  # set by transitions (the state Enum member); read it, never assign it
    _outbox: list[TransitionRecord]
    _attached: bool

    def _attach(self, state: Enum) -> None:
        """Join the shared machine in ``state`` without firing any callback."""
        self._outbox = []
        self._attached = True
        self._machine.add_model(self, initial=state)

    @property
    def is_attached(self) -> bool:
        """False after ``detach()``: every trigger then raises ``InvalidTransition``."""
        return self._attached

    @property
    def is_terminal(self) -> bool:
        return self.state in self.terminal_states

    def detach(self) -> None:
        """Leave the shared machine (idempotent). Done automatically on entering a terminal state."""
        if self._attached:
            self._machine.remove_model(self)
            self._attached = False

    def drain_transitions(self) -> list[TransitionRecord]:
        """Return the records made since the last drain, oldest first, and clear the outbox."""
        drained, self._outbox = self._outbox, []
        return drained

    def describe_facts(self) -> str:
        """One line of facts for error messages (guards' inputs)."""
        return ", ".join(f"{key}={value}" for key, value in self._snapshot().items()) or "no facts"

    def _snapshot(self) -> dict[str, Any]:
        return {}

    def _on_transition(self, source: Enum, dest: Enum, trigger: str, reason: str) -> None:
        """Hook for field updates that accompany a state change."""

    def _after_state_change(self, event: EventData) -> None:
        source = self._states[event.transition.source]
        dest = self._states[event.transition.dest]
        trigger = event.event.name
        reason = event.kwargs["reason"]
        self._on_transition(source, dest, trigger, reason)
        self._outbox.append(
            TransitionRecord(
                entity=self.entity,
                entity_id=self.entity_id,
                source=source.value,
                dest=dest.value,
                trigger=trigger,
                reason=reason,
                details={**event.kwargs["details"], **self._snapshot()},
            )
        )
        if dest in self.terminal_states:
            self.detach()
