"""Exit decisions kept across market updates: a change re-checks only the positions it can affect.

``plan_exits`` prices every held position from the snapshot and runs the exit rules on each. On a
feed that moves one (venue, symbol) key at a time that is wasted work: a position's priced view
(``held_position``: rates, marks, notional, exit cost from the books) depends only on its symbol's
quotes and books and the venues' fees, and its decision additionally on the time and on the best
alternative (the rotate rule). ``ExitWatch`` keeps both per position and recomputes

- the priced view of the positions on the symbols said to have changed (or whose quote, book or
  fee objects are not the ones it was priced from, when no symbols are given);
- the decision of a re-priced position, and of every position when the time or the best
  alternative changed.

``plan`` returns exactly what ``plan_exits`` returns for the same snapshot, positions and best
opportunity (the tests compare them after every update).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.core.domain import MarketSnapshot, Opportunity
from bot.strategy import HeldView, PlannedExit, StrategyParams, held_position
from risk.exit_rules import ExitDecision, HeldPosition, evaluate_exit


class ExitWatch:
    """Per-position cache of ``plan_exits``'s work (see the module docstring)."""

    def __init__(self, params: StrategyParams, held: Iterable[HeldView] = ()) -> None:
        self.params = params
        self._held: list[HeldView] = []
        self._by_symbol: dict[str, list[HeldView]] = {}
        # position id -> (view, inputs it was priced from, priced position, decision)
        self._cache: dict[str, tuple[HeldView, tuple, HeldPosition, ExitDecision | None]] = {}
        self._now: int | None = None
        self._best: Opportunity | None = None
        self._fees: object = None
        self.repriced = 0  # positions priced again (for tests and benchmarks)
        self.set_held(held)

    def set_held(self, held: Iterable[HeldView]) -> None:
        """The positions held now (opened, closed or changed ones are priced again on the next plan)."""
        self._held = list(held)
        self._by_symbol = {}
        for view in self._held:
            self._by_symbol.setdefault(view.symbol, []).append(view)
        keep = {view.position_id: view for view in self._held}
        self._cache = {pid: entry for pid, entry in self._cache.items() if keep.get(pid) is entry[0]}

    def plan(self, snapshot: MarketSnapshot, best: Opportunity | None,
             changed_symbols: Iterable[str] | None = None) -> list[PlannedExit]:
        """``plan_exits(snapshot, held, params, best)``. ``changed_symbols``: the symbols whose
        quotes or books changed since the previous call (None: look at every position's inputs)."""
        cache = self._cache
        everything = (snapshot.now_ts_ms != self._now or snapshot.fees is not self._fees
                      or (best is not self._best and best != self._best))
        self._now, self._fees, self._best = snapshot.now_ts_ms, snapshot.fees, best
        if changed_symbols is None:
            touched = self._held
        else:
            touched = [view for symbol in set(changed_symbols) for view in self._by_symbol.get(symbol, ())]
        done = {view.position_id for view in touched
                if self._refresh(snapshot, view, best, check=changed_symbols is None)}
        if everything:
            for view in self._held:
                if view.position_id in done:
                    continue
                entry = cache.get(view.position_id)
                if entry is None or entry[0] is not view:
                    self._refresh(snapshot, view, best, check=False)
                    continue
                cache[view.position_id] = entry[:3] + (self._decide(entry[2], view, best, snapshot),)
        exits = []
        for view in self._held:
            entry = cache.get(view.position_id)
            if entry is None or entry[0] is not view:
                self._refresh(snapshot, view, best, check=False)
                entry = cache[view.position_id]
            if entry[3] is not None:
                exits.append(PlannedExit(view.position_id, entry[3]))
        return exits

    def _refresh(self, snapshot: MarketSnapshot, view: HeldView, best: Opportunity | None, *, check: bool) -> bool:
        """Price the position again (and decide); with ``check``, only if its inputs are not the
        objects it was priced from. True when it was."""
        inputs = _inputs(snapshot, view)
        entry = self._cache.get(view.position_id)
        if check and entry is not None and entry[0] is view and all(a is b for a, b in zip(entry[1], inputs)):
            return False
        self.repriced += 1
        position = held_position(snapshot, view)
        self._cache[view.position_id] = (view, inputs, position, self._decide(position, view, best, snapshot))
        return True

    def _decide(self, position: HeldPosition, view: HeldView, best: Opportunity | None,
                snapshot: MarketSnapshot) -> ExitDecision | None:
        alternative = best if best is not None and best.symbol != view.symbol else None  # as plan_exits
        return evaluate_exit(position, snapshot.now_ts_ms, self.params.exit, alternative)


def _inputs(snapshot: MarketSnapshot, view: HeldView) -> tuple:
    """The objects ``held_position`` prices a position from."""
    long_key, short_key = (view.long_venue, view.symbol), (view.short_venue, view.symbol)
    quotes, books, fees = snapshot.quotes, snapshot.books, snapshot.fees
    return (quotes.get(long_key), quotes.get(short_key), books.get(long_key), books.get(short_key),
            fees.get(view.long_venue), fees.get(view.short_venue))
