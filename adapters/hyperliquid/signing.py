"""Hyperliquid L1-action signatures with the constant work done once (every order and cancel).

ccxt signs each Hyperliquid action (``sign_l1_action``) from scratch: the action packed by a
vendored pure-Python msgpack, the EIP-712 domain and the ``Agent`` type re-encoded and re-hashed,
the secp256k1 key parsed from hex and its public key derived again, then the digest signed. Only
the action, its nonce, the vault address and the expiry change between orders. ``FastL1Signer``
computes the domain separator and the type hash once (with ccxt's own encoder, so the constants
are ccxt's), keeps the parsed key, packs the action with the ``msgpack`` C extension when it is
installed, and signs the same digest: RFC 6979 signatures are deterministic, so the result is the
same ``{r, s, v}`` ccxt returns (tests/test_hyperliquid_signing.py compares them on many actions).
bench/live.py: ~0.2 ms less of event-loop CPU per Hyperliquid order, before its bytes leave.

A change of key, sandbox mode or ccxt's zero address is picked up on the next call; anything the
fast path does not cover (no key, a non-hex key) goes to ccxt's own method.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_AGENT_TYPES = {"Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}]}
_CHAIN_ID = 1337  # ccxt's (and the venue's) chain id for L1 actions


def _packer() -> Callable[[Any], bytes]:
    try:
        import msgpack
    except ImportError:  # ccxt's vendored pure-Python one: the same bytes, slower
        from ccxt.static_dependencies.msgpack import packb as fallback_packb

        return fallback_packb
    return msgpack.packb


def _keccak() -> Callable[[bytes], bytes]:
    from Crypto.Hash import keccak

    def digest(data: bytes) -> bytes:
        return keccak.new(digest_bits=256, data=data).digest()

    return digest


class FastL1Signer:
    """``sign_l1_action`` for one ccxt hyperliquid instance, same signatures, less work."""

    def __init__(self, exchange: Any) -> None:
        self._ex = exchange
        self._original = exchange.sign_l1_action
        self._pack = _packer()
        self._keccak = _keccak()
        self._key: tuple[str, Any] | None = None  # (the hex key it was parsed from, coincurve.PrivateKey)
        self._domain: tuple[str | None, bytes] | None = None  # (zero address, domain separator)
        from ccxt.static_dependencies.ethabi import typed_data

        self._agent_type_hash = bytes(typed_data.hash_type("Agent", _AGENT_TYPES))
        self._source_hash = {testnet: self._keccak(b"b" if testnet else b"a") for testnet in (False, True)}

    def __call__(self, action: Any, nonce: Any, vault_address: str | None = None,
                 expires_after: int | None = None) -> dict[str, Any]:
        key = self._private_key()
        if key is None:
            return self._original(action, nonce, vault_address, expires_after)
        connection_id = self._action_hash(action, vault_address, nonce, expires_after)
        testnet = bool(self._ex.safe_bool(self._ex.options, "sandboxMode", False))
        struct_hash = self._keccak(self._agent_type_hash + self._source_hash[testnet] + connection_id)
        digest = self._keccak(b"\x19\x01" + self._domain_separator() + struct_hash)
        signature = key.sign_recoverable(digest, hasher=None)
        return {"r": "0x" + signature[:32].hex(), "s": "0x" + signature[32:64].hex(), "v": 27 + signature[64]}

    def _action_hash(self, action: Any, vault_address: str | None, nonce: Any, expires_after: int | None) -> bytes:
        # The same hex text ccxt assembles (its nonce and expiry encodings included), then hashed.
        data = self._pack(action).hex() + "00000" + "%0.2X" % nonce
        data += "00" if vault_address is None else "01" + vault_address
        if expires_after is not None:
            data += "00" + "00000" + "%0.2X" % expires_after
        return self._keccak(bytes.fromhex(data))

    def _private_key(self) -> Any:
        secret = self._ex.privateKey
        if not isinstance(secret, str) or not _HEX_KEY.fullmatch(secret):
            return None
        if self._key is None or self._key[0] != secret:
            import coincurve

            self._key = (secret, coincurve.PrivateKey(bytes.fromhex(secret[-64:])))
        return self._key[1]

    def _domain_separator(self) -> bytes:
        zero_address = self._ex.safe_string(self._ex.options, "zeroAddress")
        if self._domain is None or self._domain[0] != zero_address:
            from ccxt.static_dependencies.ethabi import typed_data

            domain = {"chainId": _CHAIN_ID, "name": "Exchange", "verifyingContract": zero_address, "version": "1"}
            self._domain = (zero_address, bytes(typed_data.hash_domain(domain)))
        return self._domain[1]


def install_fast_l1_signing(exchange: Any) -> FastL1Signer:
    """Replace ``exchange.sign_l1_action`` (this instance only) with a ``FastL1Signer``."""
    signer = FastL1Signer(exchange)
    exchange.sign_l1_action = signer
    return signer
