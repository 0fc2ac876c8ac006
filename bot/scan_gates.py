"""Which ``scan`` rows the entry gates would allow, as a fresh paper account would see them.

The verdict uses the bot's own gates (``risk.entry_gates`` through ``bot.strategy``) with no open
position, every venue's equity at ``paper.starting_balance_usd`` and trading active; only the
state of a running bot (its positions, breakers, cooldowns, orphans) can deny more. On replayed
history there are no books: each leg's slippage is the ``scan.estimated_slippage_bps`` estimate.
"""

from __future__ import annotations

from dataclasses import replace

from bot.core.domain import MarketSnapshot, Opportunity
from bot.settings import Settings
from risk.entry_gates import EntryDecision, evaluate_entry
from risk.trading_state import TradingState


def gate_verdicts(snapshot: MarketSnapshot, ranked: list[Opportunity], settings: Settings) -> list[EntryDecision]:
    """One entry-gate decision per ranked opportunity, in the same order."""
    from bot.params import strategy_params
    from bot.strategy import AccountView, entry_context, exposure_summary

    params = strategy_params(settings)
    venues = {venue for venue, _symbol in snapshot.quotes}
    account = AccountView(trading_state=TradingState.ACTIVE,
                          equity_by_venue_usd={v: settings.paper.starting_balance_usd for v in venues})
    exposure = exposure_summary([])
    decisions = []
    for opp in ranked:
        context = entry_context(snapshot, opp, exposure, account)
        if opp.costs_estimated:
            estimate = settings.scan.estimated_slippage_bps
            context = replace(context, long_slippage_bps=estimate, short_slippage_bps=estimate)
        decisions.append(evaluate_entry(opp, context, params.entry))
    return decisions


def verdict_text(decision: EntryDecision) -> str:
    """``yes`` or the denial codes, for the table's ``gates`` column."""
    return "yes" if decision.allowed else ",".join(dict.fromkeys(code.value for code in decision.codes))
