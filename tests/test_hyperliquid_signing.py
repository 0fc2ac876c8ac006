"""Hyperliquid L1-action signatures with the constant work done once (adapters/hyperliquid/signing.py):
the same {r, s, v} as ccxt's own ``sign_l1_action`` (RFC 6979 signatures are deterministic)."""

from __future__ import annotations

import random

import pytest

ccxt = pytest.importorskip("ccxt")
from ccxt.static_dependencies.msgpack import packb as ccxt_packb  # noqa: E402

from adapters.ccxt_common.client import build_exchange  # noqa: E402
from adapters.credentials import Credentials  # noqa: E402
from adapters.hyperliquid import signing  # noqa: E402
from adapters.hyperliquid.signing import FastL1Signer, install_fast_l1_signing  # noqa: E402

WALLET = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # a well-known test key
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9ac79a6c4bfd7d2fb8c0e0a0b1c8f2"
NONCE_MS = 1_764_460_800_123


def _exchange(key: str = KEY):
    return build_exchange("hyperliquid", credentials=Credentials(
        "hyperliquid", {"wallet_address": WALLET, "private_key": key}))


def _random_action(rng: random.Random) -> dict:
    """Orders and cancels shaped like ccxt's, with the field types it packs (str, int, bool, float, nested)."""
    if rng.random() < 0.25:
        return {"type": "cancel", "cancels": [{"a": rng.randrange(0, 300), "o": rng.randrange(1, 2**53)}
                                              for _ in range(rng.randrange(1, 4))]}
    orders = []
    for _ in range(rng.randrange(1, 4)):
        order = {"a": rng.randrange(0, 300), "b": rng.random() < 0.5,
                 "p": str(round(rng.uniform(0.0001, 120000), rng.randrange(0, 6))),
                 "s": str(round(rng.uniform(0.001, 5000), rng.randrange(0, 5))), "r": rng.random() < 0.3,
                 "t": {"limit": {"tif": rng.choice(["Ioc", "Gtc", "Alo"])}}}
        if rng.random() < 0.7:
            order["c"] = "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
        orders.append(order)
    action = {"type": "order", "orders": orders, "grouping": "na"}
    if rng.random() < 0.2:
        action["builder"] = {"b": WALLET, "f": rng.randrange(0, 100)}
    if rng.random() < 0.1:
        action["weight"] = rng.uniform(0, 1)  # a float: packed as float64 by both packers
    return action


@pytest.mark.parametrize("testnet", [False, True])
def test_signatures_equal_ccxts_own_on_random_actions(testnet):
    exchange = _exchange()
    if testnet:
        exchange.set_sandbox_mode(True)
    fast = FastL1Signer(exchange)
    rng = random.Random(20261130 + testnet)
    for i in range(300):
        action = _random_action(rng)
        nonce = NONCE_MS + rng.randrange(0, 10**9)
        vault = None if rng.random() < 0.8 else "".join(rng.choice("0123456789abcdef") for _ in range(40))
        expires = None if rng.random() < 0.3 else nonce + 5000
        expected = fast._original(action, nonce, vault, expires)
        assert fast(action, nonce, vault, expires) == expected, (i, action, nonce, vault, expires)


def test_the_c_packer_gives_ccxts_bytes():
    fast_pack = signing._packer()
    assert fast_pack is not ccxt_packb, "msgpack (a dependency) should provide the C packer"
    rng = random.Random(7)
    for _ in range(200):
        action = _random_action(rng)
        assert fast_pack(action) == ccxt_packb(action)


def test_a_changed_key_is_used_at_once():
    exchange = _exchange()
    signer = install_fast_l1_signing(exchange)
    action = {"type": "order", "orders": [], "grouping": "na"}
    first = exchange.sign_l1_action(action, NONCE_MS, None, NONCE_MS + 5000)
    exchange.privateKey = OTHER_KEY
    second = exchange.sign_l1_action(action, NONCE_MS, None, NONCE_MS + 5000)
    assert second != first
    assert second == signer._original(action, NONCE_MS, None, NONCE_MS + 5000)


def test_a_key_it_cannot_parse_goes_to_ccxts_method():
    exchange = _exchange()
    signer = FastL1Signer(exchange)
    calls = []
    signer._original = lambda *args: calls.append(args) or {"from": "ccxt"}
    exchange.privateKey = None
    assert signer({"type": "order"}, NONCE_MS) == {"from": "ccxt"}
    assert calls == [({"type": "order"}, NONCE_MS, None, None)]


def test_built_exchanges_sign_with_it():
    exchange = _exchange()
    assert isinstance(exchange.sign_l1_action, FastL1Signer)
    assert not isinstance(build_exchange("binanceusdm", credentials=None).__dict__.get("sign_l1_action"),
                          FastL1Signer)
