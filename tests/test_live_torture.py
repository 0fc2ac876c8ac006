"""kill -9 and venue faults on the LIVE path: ``python -m bot --live`` against the local venue emulator.

A small run of bench/live_torture.py: two SIGKILLs at seeded random moments and two fault rounds
(``drop_after_execute`` before entries: the venue executes the order, then drops the connection with
no answer; ``absurd_book`` while a position is held: a venue publishes its books at 1000x the price
while its exit comes due), each lifetime killed and restarted on the same database, then a graceful ``--duration`` run
that recovers and flattens. After every kill and at the end, the bot's database is audited against
the EMULATOR's own records (tests/live_audit.py): no orphan leg, no order twice, no position lost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.live_torture import torture  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_live_kills_a_dropped_order_answer_and_absurd_books_lose_nothing_and_end_flat(tmp_path: Path) -> None:
    summary = torture(tmp_path, kills=2, seed=7, venues=["bybit", "hyperliquid"],
                      fault_kinds=("drop_after_execute", "absurd_book"), until_fired_s=90.0)
    detail = {k: v for k, v in summary.items() if k != "rounds_detail"}
    print(f"\nlive torture: {detail}")
    kinds = [r["kind"] for r in summary["rounds_detail"]]
    assert kinds.count("fault") == 2 and kinds.count("kill") == 2 and kinds[-1] == "graceful"
    assert summary["exit_codes"][:-1] == [-9, -9, -9, -9]
    # The fault really hit an order of the bot (an entry, or a repair/exit after a kill).
    assert summary["faults_injected"]["drop_after_execute"]["fired"] >= 1, detail
    # Exit 0 of the graceful run: the bot verified flat on every venue itself; the emulator agrees.
    assert summary["graceful_exit_code"] == 0, (tmp_path / f"run{len(kinds) - 1:03d}.out").read_text()[-3000:]
    assert summary["venue_positions_at_end"] == {}
    assert summary["positions_opened"] >= 1 and set(summary["position_states"]) == {"closed"}
    assert summary["bot_fills"] == summary["venue_fills"] >= 2  # every venue fill recorded, by trade id
    assert summary["per_kill_violations"] == {}
    assert summary["problems"] == {}
    assert summary["orphan_legs"] == 0
    assert summary["duplicate_orders"] == 0
    assert summary["lost_positions"] == 0
    assert summary["traded_on_absurd_data"] == 0  # no order priced from the 1000x books
    assert summary["ok"] is True
