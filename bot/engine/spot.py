"""Spot legs of carry positions (long spot / short perp): wallet baselines, spot sizes, dust.

A spot market ("<venue>:spot", ``bot.core.domain.spot_market``) has no positions: the bot's holding
there is the wallet's base-coin balance minus a BASELINE the engine records just before its first
spot buy (the coins the account held that are not the bot's). Baselines are kept in the store's kv
table (``spot_baseline:<market>:<symbol>``) so a restart judges the wallet exactly as before.

Dust: a base-coin fee leaves a spot leg at a size that is not a whole lot, so a close sells the whole
lots and the sub-lot remainder (less than one spot lot) cannot be sold. It is RELEASED: the leg is
set to 0, the baseline rises by the dust (the coins stay in the wallet, no longer the bot's), an
event ``spot_dust_released`` says how much, and the amount is kept (``spot_dust:<position>:<market>``)
so the position's totals value it at the closing price (``storage.totals``).
"""

from __future__ import annotations

from decimal import Decimal

import anyio

from adapters.errors import FatalVenueError, TemporaryVenueError
from bot.core.domain import ZERO, Instrument, LegSide, is_spot
from bot.core.ports import SpotWallet
from bot.engine.core import EngineCore
from machines.position import PositionFsm

BASELINE_KEY = "spot_baseline:{market}:{symbol}"
DUST_KEY = "spot_dust:{position_id}:{market}"


class SpotUnavailable(Exception):
    """The executor cannot trade spot, or the wallet could not be read (an entry must not start)."""


class SpotMixin(EngineCore):
    """Wallet baselines and the spot-aware view of what the venues hold."""

    def _spot_lot(self, market: str, symbol: str) -> Decimal:
        inst: Instrument | None = self._instrument(market, symbol)
        return inst.lot_size_base if inst is not None else ZERO

    async def _wallet(self, market: str) -> dict[str, Decimal]:
        if not isinstance(self.executor, SpotWallet):
            raise SpotUnavailable(f"the executor cannot trade spot ({market})")
        return await self.executor.spot_wallet_base(market)

    async def record_spot_baseline(self, market: str, symbol: str) -> Decimal:
        """Read the wallet now and store it as the baseline of (market, symbol): called before the
        first spot buy of a position, when no active position owns that spot leg. Raises
        ``SpotUnavailable`` when the wallet cannot be read (the entry is then not made)."""
        try:
            held = (await self._wallet(market)).get(symbol, ZERO)
            self._on_venue_result(market, True)
        except (TemporaryVenueError, FatalVenueError) as exc:
            self._on_venue_result(market, False)
            raise SpotUnavailable(f"{market} wallet unreadable: {exc}") from exc
        await self._store_baseline(market, symbol, held)
        return held

    async def _store_baseline(self, market: str, symbol: str, value: Decimal) -> None:
        await self.store.set_kv(BASELINE_KEY.format(market=market, symbol=symbol), str(value), self.clock.now_ms())
        self.spot_baselines[(market, symbol)] = value

    async def load_spot_baselines(self) -> int:
        """Reload every stored baseline (restart). Returns how many."""
        for key, value in (await self.store.kv_with_prefix("spot_baseline:")).items():
            _prefix, rest = key.split(":", 1)
            market, symbol = rest.rsplit(":", 1)
            self.spot_baselines[(market, symbol)] = Decimal(value)
        return len(self.spot_baselines)

    async def spot_sizes(self, market: str) -> dict[tuple[str, str], Decimal]:
        """The bot's holdings on one spot market: wallet minus baseline per symbol that has a
        baseline, never negative (coins gone below the baseline mean the bot holds nothing there),
        below one spot lot counted as 0 (dust). Raises ``TemporaryVenueError`` (or
        ``SpotUnavailable``) when the wallet cannot be read."""
        wallet = await self._wallet(market)
        out: dict[tuple[str, str], Decimal] = {}
        for (m, symbol), baseline in self.spot_baselines.items():
            if m != market:
                continue
            held = max(wallet.get(symbol, ZERO) - baseline, ZERO)
            if held >= self._spot_lot(market, symbol) and held != 0:
                out[(market, symbol)] = held
        return out

    def spot_markets(self) -> set[str]:
        """Spot markets the engine trades or has baselines on."""
        found = {m for m, _symbol in self.spot_baselines}
        found |= {p.long_venue for p in self.positions.values() if is_spot(p.long_venue)}
        return found | {v for v in self.known_venues if is_spot(v)}

    async def venue_sizes(self) -> dict[tuple[str, str], Decimal]:
        """Signed size per (venue, symbol) as the venues report it: perp positions plus the bot's
        spot holdings (wallet minus baseline). Raises when a venue cannot be read."""
        sizes = {(p.venue, p.symbol): p.size_base for p in await self.executor.positions(None) if p.size_base != 0}
        for market in sorted(self.spot_markets()):
            sizes.update(await self.spot_sizes(market))
        return sizes

    async def _release_spot_dust(self, pos: PositionFsm) -> None:
        """A spot leg smaller than one spot lot cannot be sold: release it (see the module doc)."""
        market = pos.long_venue
        if not is_spot(market):
            return
        dust = pos.long_filled_base
        lot = self._spot_lot(market, pos.symbol)
        if dust <= ZERO or dust >= lot:
            return
        baseline = self.spot_baselines.get((market, pos.symbol), ZERO) + dust
        # Stored first, in one transaction (leg, baseline, dust total): a crash before it leaves the
        # dust the position's (released again after the restart), a crash after it leaves it released
        # exactly once. Memory follows the store, shielded so a cancellation cannot split the two.
        with anyio.CancelScope(shield=True):
            await self.store.release_spot_dust(
                pos.position_id, self.clock.now_ms(), long_size_base=pos.long_filled_base - dust,
                baseline_key=BASELINE_KEY.format(market=market, symbol=pos.symbol), baseline_base=baseline,
                dust_key=DUST_KEY.format(position_id=pos.position_id, market=market), dust_base=dust)
            self.spot_baselines[(market, pos.symbol)] = baseline
            pos.apply_leg_delta(LegSide.LONG, -dust)
        await self._event("spot_dust_released", pos.position_id, "info",
                          f"{dust} {pos.symbol} on {market} is below one lot ({lot}) and cannot be sold: left in "
                          "the wallet (baseline raised), valued at the closing price in the totals",
                          {"market": market, "symbol": pos.symbol, "dust_base": str(dust)})
