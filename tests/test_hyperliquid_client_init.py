"""ccxt's per-order ``initialize_client`` on Hyperliquid: skipped once settled (adapters/hyperliquid/dialect.py)."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from adapters.hyperliquid.dialect import install_settled_client_init, read_account_abstraction
from adapters.registry import LiveVenueConfig, build_live_venue


class FakeHyperliquid:
    """The parts of ccxt's hyperliquid instance the fast path touches."""

    def __init__(self, options: dict, abstraction: str | None = "default") -> None:
        self.options = options
        self.initializations = 0
        self.abstraction_reads = 0
        self._abstraction = abstraction

    async def initialize_client(self) -> bool:
        self.initializations += 1
        return True

    async def is_unified_enabled(self, method: str) -> list:
        self.abstraction_reads += 1
        unified = None if self._abstraction is None else self._abstraction == "unifiedAccount"
        self.options["enableUnifiedMargin"] = unified
        return [unified, {}]


SETTLED = {"approvedBuilderFee": True, "refSet": True}


@pytest.mark.anyio
async def test_a_settled_client_skips_ccxts_initialisation_and_an_unsettled_one_runs_it() -> None:
    exchange = FakeHyperliquid({**SETTLED})
    install_settled_client_init(exchange)
    assert await exchange.initialize_client() is True
    assert exchange.initializations == 1  # the abstraction is not known yet: ccxt's own path
    assert await read_account_abstraction(exchange) == "not unified"
    for _ in range(3):
        assert await exchange.initialize_client() is True
    assert exchange.initializations == 1  # known: no gather, no info request before the orders
    exchange.options["refSet"] = False  # (a referrer not settled: ccxt settles it)
    await exchange.initialize_client()
    assert exchange.initializations == 2


@pytest.mark.anyio
async def test_an_unknown_abstraction_leaves_ccxt_asking_and_says_so() -> None:
    exchange = FakeHyperliquid({**SETTLED}, abstraction=None)
    install_settled_client_init(exchange)
    assert "unknown" in await read_account_abstraction(exchange)
    await exchange.initialize_client()
    await exchange.initialize_client()
    assert exchange.initializations == 2
    unified = FakeHyperliquid({**SETTLED}, abstraction="unifiedAccount")
    assert await read_account_abstraction(unified) == "unified"


@pytest.mark.anyio
async def test_the_emulated_venue_answers_and_set_up_reads_it_once(tmp_path) -> None:
    if importlib.util.find_spec("paper.emulator.hyperliquid") is None:
        pytest.skip("the emulator in this checkout does not speak hyperliquid yet")
    from paper.emulator import start_emulator

    with start_emulator(["hyperliquid"], state_path=tmp_path / "v.sqlite") as emu:
        cred = emu.credentials["hyperliquid"]
        venue = await build_live_venue("hyperliquid", LiveVenueConfig(base_url=emu.base_urls["hyperliquid"]),
                                       {"HYPERLIQUID_WALLET_ADDRESS": cred.key, "HYPERLIQUID_PRIVATE_KEY": cred.secret},
                                       symbols=["BTC"], max_slippage_bps=Decimal(10))
        try:
            lines = await venue.setup()
            exchange = venue.market._ex
            assert "account abstraction not unified: unchanged" in lines
            assert exchange.options["enableUnifiedMargin"] is False
            calls = []
            original = exchange.publicPostInfo

            async def info(params, *rest):
                calls.append(params.get("type"))
                return await original(params, *rest)
            exchange.publicPostInfo = info
            assert await exchange.initialize_client() is True
            assert calls == []  # settled: nothing asked before an order
        finally:
            await venue.close()
