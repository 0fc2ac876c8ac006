"""bot.heap: after start-up the heap is frozen and the youngest generation's threshold raised, once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_settle_after_start_freezes_once_and_raises_the_gen0_threshold() -> None:
    # In a child process: freezing the test runner's own heap would outlive this test.
    code = (
        "import gc\n"
        "from bot.heap import GEN0_THRESHOLD, settle_after_start\n"
        "keep = [[n] for n in range(1000)]\n"
        "assert gc.get_freeze_count() == 0\n"
        "assert settle_after_start() is True\n"
        "frozen = gc.get_freeze_count()\n"
        "assert frozen >= 1000, frozen\n"
        "assert gc.get_threshold()[0] >= GEN0_THRESHOLD\n"
        "assert settle_after_start() is False\n"
        "assert gc.get_freeze_count() == frozen\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
