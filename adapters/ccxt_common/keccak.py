"""Keccak-256 in C for ccxt's Ethereum-style signing (every Hyperliquid order and cancel).

ccxt signs a Hyperliquid action with EIP-712 typed data: about ten Keccak-256 hashes per order.
It takes them from OpenSSL when OpenSSL (3.2 or later) offers ``KECCAK-256``, else from a vendored
pure-Python sponge at ~0.4-1 ms a hash: ~4 ms of event-loop CPU per order, more than the whole
rest of an entry's path (bench/live.py). ``install_fast_keccak`` points ccxt at pycryptodome's
Keccak (C; a dependency of pybit and of ours) when ccxt would use the pure-Python one. Same
function, same bytes out (tests/test_ccxt_keccak.py checks it against ccxt's own); it is a
process-wide switch of ccxt's module attributes, done once, before the first order is signed.
"""

from __future__ import annotations

from collections.abc import Callable


def _pycryptodome_sha3() -> Callable[[bytes | bytearray], bytearray] | None:
    try:
        from Crypto.Hash import keccak
    except ImportError:
        return None

    def sha3(data: bytes | bytearray) -> bytearray:
        """Keccak-256 (original padding, not NIST SHA3-256) as ccxt's ``SHA3``: a bytearray."""
        return bytearray(keccak.new(digest_bits=256, data=bytes(data)).digest())

    return sha3


def install_fast_keccak() -> bool:
    """Make ccxt's Keccak-256 the C one; True when it was switched now, False when ccxt already
    uses a fast one (OpenSSL's, or switched before) or pycryptodome is missing."""
    from ccxt.static_dependencies import keccak as ccxt_keccak
    from ccxt.static_dependencies.ethabi import abi, typed_data

    pure = getattr(ccxt_keccak, "_pure_python_sha3", None)
    if pure is None or ccxt_keccak.SHA3 is not pure:
        return False
    fast = _pycryptodome_sha3()
    if fast is None:
        return False
    ccxt_keccak.SHA3 = fast  # read at call time by ccxt.base.exchange (hash, address)
    for module in (typed_data, abi):  # these bound the name at import (``from ..keccak import SHA3``)
        if getattr(module, "keccak", None) is pure:
            module.keccak = fast
    return True
