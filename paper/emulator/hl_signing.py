"""Hyperliquid L1 action signatures: who signed an ``/exchange`` request.

The venue hashes ``msgpack(action) || nonce (8 bytes, big-endian) || vault flag [|| vault address]
[|| 0x00 || expiresAfter (8 bytes)]`` with Keccak-256 into a ``connectionId``, wraps it in the EIP-712
"phantom agent" ``Agent(string source, bytes32 connectionId)`` (source "a" mainnet, "b" testnet) under
the domain ``Exchange / 1 / chainId 1337 / verifyingContract 0x0``, and the request carries the
secp256k1 signature ``{r, s, v}`` of that digest. The server recovers the signer's address from it:
an unknown address is refused ("User or API Wallet ... does not exist"), exactly as on the venue.

Uses only what the project's dependencies already bring: coincurve (via ccxt) for recovery, ccxt's
vendored msgpack, and Keccak from pycryptodome (via pybit; ccxt's pure-Python Keccak as a fallback).
The EIP-712 encoding is written out here, independently of ccxt's signer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ccxt.static_dependencies.msgpack import packb

try:
    from Crypto.Hash import keccak as _pycryptodome_keccak

    def keccak256(data: bytes) -> bytes:
        return _pycryptodome_keccak.new(digest_bits=256, data=data).digest()
except ImportError:  # pragma: no cover - pycryptodome comes with pybit
    from ccxt.static_dependencies import keccak as _vendored_keccak

    def keccak256(data: bytes) -> bytes:
        return bytes(_vendored_keccak.SHA3(data))

_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_AGENT_TYPE = b"Agent(string source,bytes32 connectionId)"


def action_hash(action: Any, nonce: int, vault_address: str | None, expires_after: int | None) -> bytes:
    data = packb(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + int(expires_after).to_bytes(8, "big")
    return keccak256(data)


@lru_cache(maxsize=4)
def _constants(source: str) -> tuple[bytes, bytes]:
    """(domain separator, Agent type hash + hashed source): the parts that never change."""
    domain = keccak256(
        keccak256(_DOMAIN_TYPE) + keccak256(b"Exchange") + keccak256(b"1") + (1337).to_bytes(32, "big") + bytes(32)
    )
    return domain, keccak256(_AGENT_TYPE) + keccak256(source.encode())


def agent_digest(connection_id: bytes, source: str) -> bytes:
    domain, prefix = _constants(source)
    return keccak256(b"\x19\x01" + domain + keccak256(prefix + connection_id))


def recover_address(digest: bytes, signature: dict[str, Any]) -> str | None:
    """The lower-case 0x address that produced ``signature`` over ``digest``; None when malformed."""
    from coincurve import PublicKey

    try:
        r = int(str(signature["r"]), 16)
        s = int(str(signature["s"]), 16)
        v = int(signature["v"])
        recid = v - 27 if v >= 27 else v
        if recid not in (0, 1):
            return None
        public = PublicKey.from_signature_and_message(
            r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid]), digest, hasher=None)
    except (KeyError, TypeError, ValueError, OverflowError):  # coincurve: ValueError for invalid points
        return None
    return "0x" + keccak256(public.format(compressed=False)[1:])[-20:].hex()


def signer_of(payload: dict[str, Any], known: set[str]) -> tuple[str | None, str | None]:
    """(address, None) when the payload is signed by a ``known`` address (lower-case), else
    (None, reason). Both phantom-agent sources are tried ("a" mainnet, "b" testnet): the emulator
    stands in for either network. A signature by anyone else recovers to an unknown address."""
    try:
        action, nonce = payload["action"], int(payload["nonce"])
        signature = payload["signature"]
        vault = payload.get("vaultAddress")
        connection = action_hash(action, nonce, vault, payload.get("expiresAfter"))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None, "Failed to deserialize the JSON body into the target type"
    recovered = None
    for source in ("a", "b"):
        recovered = recover_address(agent_digest(connection, source), signature)
        if recovered in known:
            return recovered, None
    if recovered is None:
        return None, "Failed to deserialize the JSON body into the target type"
    return None, f"User or API Wallet {recovered} does not exist."
