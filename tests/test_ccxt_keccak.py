"""ccxt's Keccak-256 switched to pycryptodome's C one (adapters/ccxt_common/keccak.py): same bytes."""

from __future__ import annotations

import os

import pytest

ccxt = pytest.importorskip("ccxt")
from ccxt.static_dependencies import keccak as ccxt_keccak  # noqa: E402
from ccxt.static_dependencies.ethabi import typed_data  # noqa: E402

from adapters.ccxt_common.client import build_exchange  # noqa: E402
from adapters.ccxt_common.keccak import _pycryptodome_sha3, install_fast_keccak  # noqa: E402
from adapters.credentials import Credentials  # noqa: E402

PURE = ccxt_keccak._pure_python_sha3
WALLET = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # a well-known test key
ACTION = {"type": "order", "grouping": "na",
          "orders": [{"a": 0, "b": True, "p": "50000", "s": "0.001", "r": False, "t": {"limit": {"tif": "Ioc"}}}]}


@pytest.fixture
def pure_keccak(monkeypatch):
    """ccxt as on a machine whose OpenSSL has no KECCAK-256 (restored after the test)."""
    monkeypatch.setattr(ccxt_keccak, "SHA3", PURE)
    monkeypatch.setattr(typed_data, "keccak", PURE)
    from ccxt.static_dependencies.ethabi import abi
    monkeypatch.setattr(abi, "keccak", PURE)


def test_the_c_keccak_gives_ccxts_bytes_on_every_length_around_the_block_size():
    fast = _pycryptodome_sha3()
    assert fast is not None, "pycryptodome is a dependency"
    rng = os.urandom(400)
    for n in [0, 1, 31, 32, 33, 135, 136, 137, 271, 272, 273, 400]:
        data = rng[:n]
        assert fast(data) == PURE(data)
        assert isinstance(fast(bytearray(data)), bytearray)
    # the known Keccak-256 of the empty string (not NIST SHA3-256's a7ffc6f8...)
    assert fast(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_a_hyperliquid_signature_is_unchanged_and_ccxt_uses_the_c_keccak(pure_keccak):
    exchange = ccxt.hyperliquid({"walletAddress": WALLET, "privateKey": KEY})
    before = exchange.sign_l1_action(ACTION, 1_700_000_000_000, None)
    assert install_fast_keccak() is True
    assert ccxt_keccak.SHA3 is not PURE and typed_data.keccak is ccxt_keccak.SHA3
    assert exchange.sign_l1_action(ACTION, 1_700_000_000_000, None) == before  # RFC 6979: deterministic
    assert install_fast_keccak() is False  # once


def test_building_a_ccxt_venue_switches_it(pure_keccak):
    build_exchange("hyperliquid", credentials=Credentials("hyperliquid", {"wallet_address": WALLET, "private_key": KEY}))
    assert ccxt_keccak.SHA3 is not PURE
    assert typed_data.keccak is ccxt_keccak.SHA3
