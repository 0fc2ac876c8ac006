"""Does the key trade the account the bot reads?

On Hyperliquid the wallet address and the private key are two separate variables: the bot reads
positions, fills and funding of ``HYPERLIQUID_WALLET_ADDRESS``, and its orders trade the account of
whoever signs them: the key's own address, or, for an API wallet (agent), the master account that
approved it. A valid key of some other account would trade that account while the bot reads this
one (a leg the bot can never see), so ``--live`` checks it once at start-up, before any order:
the key's address is the wallet's, or the venue's ``userRole`` says the key is an agent of it.
Neither the key nor the addresses are printed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from adapters.errors import FatalVenueError

VENUE = "hyperliquid"


def key_address(private_key: str) -> str:
    """The lower-case 0x address a secp256k1 private key (64 hex digits, 0x optional) signs as."""
    from Crypto.Hash import keccak
    from coincurve import PrivateKey

    public = PrivateKey(bytes.fromhex(private_key.removeprefix("0x"))).public_key.format(compressed=False)[1:]
    return "0x" + keccak.new(digest_bits=256, data=public).digest()[-20:].hex()


def signer_problem(wallet: str, signer: str, role: Mapping[str, Any] | None) -> str | None:
    """None when orders signed as ``signer`` trade ``wallet``'s account, else why not. ``role``: the
    venue's ``userRole`` answer for ``signer`` (None when it was not asked: the key is the wallet's)."""
    if signer == wallet.lower():
        return None
    kind = role.get("role") if isinstance(role, Mapping) else None
    data = role.get("data") if isinstance(role, Mapping) else None
    master = str(data.get("user", "")).lower() if isinstance(data, Mapping) else ""
    if kind == "agent" and master == wallet.lower():
        return None
    if kind == "agent":
        seen = "an API wallet of another account"
    elif kind in ("user", "vault", "subAccount"):
        seen = f"the key of another account (role {kind})"
    elif kind == "missing":
        seen = "a key the venue does not know"
    else:
        seen = f"a key whose role the venue did not tell ({role!r})"[:160]
    return (f"HYPERLIQUID_PRIVATE_KEY is {seen}, not the key of HYPERLIQUID_WALLET_ADDRESS nor an API wallet "
            "approved for it: its orders would trade an account the bot does not read (set the account's "
            "address, or approve this key as its API wallet)")


async def check_signer(wallet: str, private_key: str,
                       user_role: Callable[[str], Awaitable[Mapping[str, Any]]]) -> str:
    """The set-up line, or ``FatalVenueError`` (before any order) when the key trades another account.
    ``user_role(address)``: the venue's ``{"type": "userRole", "user": address}`` answer."""
    signer = key_address(private_key)
    if signer == wallet.lower():
        return "signing key (the account's own): unchanged"
    problem = signer_problem(wallet, signer, await user_role(signer))
    if problem is not None:
        raise FatalVenueError(VENUE, problem)
    return "signing key (an API wallet approved for the account): unchanged"
