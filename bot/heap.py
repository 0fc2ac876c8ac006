"""The process heap after start-up: what the bot keeps for its whole life is left out of garbage collection.

Start-up builds what a run keeps to its end: the market universe, the forecast's legs (thousands
with a large universe), instruments, settings, modules. Python's cyclic collector walks every
tracked object of a generation it collects, so each of its full passes over that start-up heap
is a pause of tens of ms (46 ms measured at 500 symbols x 10 venues): at a high ``--speed`` that is
minutes of simulated time in which no loop runs. ``settle_after_start`` moves what is alive after
start-up into the permanent generation (``gc.freeze``: still freed by reference counting, only no
longer walked) and lets the youngest generation grow to ``GEN0_THRESHOLD`` objects before a pass
(a strategy pass allocates thousands of short-lived objects; the default 700 runs the collector
every few hundred microseconds of work). Once per process.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
_settled = False


def settle_after_start() -> bool:
    """Freeze the start-up heap and raise the youngest generation's threshold (see the module
    docstring); True the first time in a process, False after (nothing done again)."""
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()  # start-up's own garbage is freed now, not frozen
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(GEN0_THRESHOLD, _gen0), gen1, gen2)
    return True
