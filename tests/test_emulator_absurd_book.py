"""The emulator's ``absurd_book`` fault: the venue publishes a book at ``factor`` x the price (REST and
streams) while its matching engine keeps trading at the true price; factor 1 ends it; bad arguments
are refused with the field named (Python and control port)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from paper.emulator import FaultError, start_emulator


def _bybit_best_ask(emu) -> Decimal:
    url = f"{emu.base_urls['bybit']}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=1"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return Decimal(json.loads(answer.read())["result"]["a"][0][0])


def _wait(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_absurd_book_is_published_but_never_matched_and_ends_with_factor_one(tmp_path) -> None:
    with start_emulator(["bybit"], state_path=tmp_path / "v.sqlite", manual_clock=True) as emu:
        true_ask = emu.call(lambda: emu.core.true_book("bybit", "BTC").best_ask)
        assert _bybit_best_ask(emu) == true_ask
        emu.faults.arm("absurd_book", venue="bybit", symbol="BTC", factor=1000)
        assert _wait(lambda: _bybit_best_ask(emu) == true_ask * 1000)
        assert emu.call(lambda: emu.core.true_book("bybit", "BTC").best_ask) == true_ask  # matching unchanged
        assert emu.call(lambda: emu.core.book("bybit", "ETH").best_ask) == emu.call(
            lambda: emu.core.true_book("bybit", "ETH").best_ask)  # only the named symbol
        emu.faults.arm("absurd_book", venue="bybit", factor=1)
        assert _wait(lambda: _bybit_best_ask(emu) == true_ask)
        with pytest.raises(FaultError, match="factor"):
            emu.faults.arm("absurd_book", factor=0)
        with pytest.raises(FaultError, match="symbol"):
            emu.faults.arm("absurd_book", symbol="NOPE")
        request = urllib.request.Request(f"{emu.control_url}/_emulator/faults", method="POST",
                                         data=json.dumps({"kind": "absurd_book", "factor": "big"}).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400 and "factor" in refused.value.read().decode()
