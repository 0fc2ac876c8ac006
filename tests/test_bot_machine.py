"""Bot machine: the literal table, records, restore and a random trigger walk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions.core import MachineError

from machines.bot import _MACHINE, TRANSITIONS, BotFsm, BotState
from machines.errors import InvalidTransition
from machines.records import TransitionRecord

B = BotState
RUNNING = [B.INITIALIZING, B.RECOVERING, B.SCANNING, B.OPENING, B.MONITORING, B.CLOSING, B.HALTED, B.ERROR]

# The table written out by hand: (source, trigger) -> destination.
EXPECTED_EDGES: dict[tuple[BotState, str], BotState] = {
    (B.INITIALIZING, "recover"): B.RECOVERING,
    (B.ERROR, "recover"): B.RECOVERING,
    (B.RECOVERING, "scan"): B.SCANNING,
    (B.OPENING, "scan"): B.SCANNING,
    (B.MONITORING, "scan"): B.SCANNING,
    (B.CLOSING, "scan"): B.SCANNING,
    (B.RECOVERING, "monitor"): B.MONITORING,
    (B.SCANNING, "monitor"): B.MONITORING,
    (B.OPENING, "monitor"): B.MONITORING,
    (B.CLOSING, "monitor"): B.MONITORING,
    (B.SCANNING, "begin_open"): B.OPENING,
    (B.SCANNING, "start_close"): B.CLOSING,
    (B.MONITORING, "start_close"): B.CLOSING,
    (B.RECOVERING, "halt"): B.HALTED,
    (B.SCANNING, "halt"): B.HALTED,
    (B.OPENING, "halt"): B.HALTED,
    (B.MONITORING, "halt"): B.HALTED,
    (B.CLOSING, "halt"): B.HALTED,
    (B.HALTED, "resume"): B.SCANNING,
    (B.RECOVERING, "fault"): B.ERROR,
    (B.SCANNING, "fault"): B.ERROR,
    (B.OPENING, "fault"): B.ERROR,
    (B.MONITORING, "fault"): B.ERROR,
    (B.CLOSING, "fault"): B.ERROR,
    (B.HALTED, "fault"): B.ERROR,
    **{(state, "stop"): B.STOPPING for state in RUNNING},
    (B.STOPPING, "shutdown_complete"): B.STOPPED,
}
TRIGGERS = sorted({trigger for _, trigger in EXPECTED_EDGES})


def table_edges() -> dict[tuple[BotState, str], BotState]:
    edges: dict[tuple[BotState, str], BotState] = {}
    for row in TRANSITIONS:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            assert (source, row["trigger"]) not in edges, "the bot table has no conditional edges"
            assert "conditions" not in row and "unless" not in row
            edges[(source, row["trigger"])] = row["dest"]
    return edges


def test_table_matches_hand_written_expectation() -> None:
    assert table_edges() == EXPECTED_EDGES


def test_new_bot_starts_initializing() -> None:
    bot = BotFsm()
    assert bot.state is B.INITIALIZING and bot.entity_id == "bot"
    assert not bot.allows_entries and not bot.is_terminal
    assert bot.drain_transitions() == []
    bot.detach()


INVALID_PAIRS = [
    (state, trigger) for state in B for trigger in TRIGGERS if (state, trigger) not in EXPECTED_EDGES
]
INVALID_IDS = [f"{state.value}-{trigger}" for state, trigger in INVALID_PAIRS]


def test_invalid_pairs_enumerated() -> None:
    # 10 states x 10 triggers = 100 pairs; 2+4+4+1+2+5+1+6+8+1 = 34 legal.
    assert len(TRIGGERS) == 10 and len(EXPECTED_EDGES) == 34
    assert len(INVALID_PAIRS) == 100 - 34


@pytest.mark.parametrize(("state", "trigger"), INVALID_PAIRS, ids=INVALID_IDS)
def test_every_pair_outside_the_table_raises(state: BotState, trigger: str) -> None:
    bot = BotFsm.restore(state)
    with pytest.raises(InvalidTransition) as excinfo:
        getattr(bot, trigger)(reason="test")
    assert isinstance(excinfo.value, MachineError)
    assert excinfo.value.state is state and excinfo.value.trigger == trigger
    assert f"from state {state.value!r}" in str(excinfo.value)
    assert bot.state is state
    assert bot.drain_transitions() == []
    bot.detach()


@pytest.mark.parametrize(
    ("source", "trigger", "dest"),
    [(source, trigger, dest) for (source, trigger), dest in EXPECTED_EDGES.items()],
    ids=[f"{s.value}-{t}" for s, t in EXPECTED_EDGES],
)
def test_legal_edge_moves_and_records(source: BotState, trigger: str, dest: BotState) -> None:
    bot = BotFsm.restore(source)
    assert getattr(bot, trigger)(reason="why", details={"breaker": "unhedged_window"}) is True
    assert bot.state is dest
    assert bot.drain_transitions() == [
        TransitionRecord(
            entity="bot",
            entity_id="bot",
            source=source.value,
            dest=dest.value,
            trigger=trigger,
            reason="why",
            details={"breaker": "unhedged_window"},
            ts_ms=None,
        )
    ]
    assert bot.is_attached is (dest is not B.STOPPED)
    bot.detach()


def test_restore_fires_no_callbacks() -> None:
    bot = BotFsm.restore("halted")
    assert bot.state is B.HALTED
    assert bot.drain_transitions() == []
    assert bot in _MACHINE.models
    bot.detach()
    assert bot not in _MACHINE.models


def test_typical_run_and_shutdown() -> None:
    bot = BotFsm()
    bot.recover(reason="start-up reconciliation")
    bot.scan(reason="reconciled, capacity free")
    assert bot.allows_entries
    bot.begin_open(reason="entry BTCUSDT")
    bot.monitor(reason="at capacity")
    assert not bot.allows_entries
    bot.halt(reason="unhedged-window breaker open")
    bot.resume(reason="breaker closed")
    bot.stop(reason="SIGTERM")
    with pytest.raises(InvalidTransition):
        bot.stop(reason="second SIGTERM")  # logged by the shell, not obeyed
    bot.shutdown_complete(reason="flat")
    assert [r.dest for r in bot.drain_transitions()] == [
        "recovering", "scanning", "opening", "monitoring", "halted", "scanning", "stopping", "stopped"
    ]
    assert bot.is_terminal and not bot.is_attached and bot not in _MACHINE.models


def test_trigger_requires_a_reason() -> None:
    bot = BotFsm()
    with pytest.raises(TypeError):
        bot.recover()
    with pytest.raises(TypeError):
        bot.recover("start-up")
    assert bot.state is B.INITIALIZING
    bot.detach()


@settings(max_examples=200, deadline=None)
@given(triggers=st.lists(st.sampled_from(TRIGGERS), max_size=40))
def test_random_trigger_sequences_follow_the_table(triggers: list[str]) -> None:
    bot = BotFsm()
    expected_state = B.INITIALIZING
    try:
        for trigger in triggers:
            dest = EXPECTED_EDGES.get((expected_state, trigger))
            if dest is None:
                with pytest.raises(InvalidTransition):
                    getattr(bot, trigger)(reason="walk")
            else:
                getattr(bot, trigger)(reason="walk")
                (record,) = bot.drain_transitions()
                assert (record.source, record.trigger) == (expected_state.value, trigger)
                assert record.dest == dest.value
                expected_state = dest
            assert bot.state is expected_state
            assert bot.allows_entries is (expected_state is B.SCANNING)
    finally:
        bot.detach()
