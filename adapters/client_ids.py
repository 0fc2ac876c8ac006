"""Per-venue client order id codecs (LIVE.md section 5).

Our ids (storage/ids.py) are deterministic, ``fa`` + 20 hex + purpose letter + leg letter + 4
digits, lowercase alphanumeric, 28 characters. Each venue constrains its client id differently;
a codec maps ours to the venue's form DETERMINISTICALLY (a retry after an unknown outcome must
send the identical id) and back where the mapping is reversible:

- string venues (bybit/binance/aster ``<= 36 [A-Za-z0-9_-]``, okx ``1-32 alphanumeric``,
  paradex, extended): ours unchanged when it fits, else a keyed hash (not reversible);
- hyperliquid: ``0x`` + 32 hex; our format packs losslessly (``0xfa01`` + digest + letters +
  attempt); anything else hashes to ``0xfb`` + 30 hex;
- integer venues (lighter ``client_order_index`` 48 bit, backpack ``clientId`` uint32, grvt
  ``client_order_id`` 63 bit): a hash (never reversible, so the executor remembers what it sent,
  and the engine has persisted our id before sending).

``CodecMemo`` keeps the reverse mapping of every id encoded in this process so fills and order
reports can be attributed back to our ids even for hashing codecs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

_OURS = re.compile(r"^fa([0-9a-f]{20})([a-z])([a-z])(\d{4})$")


def _hash_bytes(ours: str, size: int) -> bytes:
    return hashlib.blake2b(ours.encode("utf-8"), digest_size=size, person=b"fa-client-id").digest()


@dataclass(frozen=True)
class StringCodec:
    """Venues taking a string id: identity when ``ours`` fits ``pattern``, else ``h`` + hash."""

    venue: str
    max_len: int
    pattern: str  # regex of ONE allowed character

    def encode(self, ours: str) -> str:
        if not ours:
            raise ValueError("client order id must be non-empty")
        if len(ours) <= self.max_len and re.fullmatch(f"(?:{self.pattern})+", ours) and not ours.startswith("h0"):
            return ours
        size = min(16, (self.max_len - 2) // 2)
        return "h0" + _hash_bytes(ours, size).hex()

    def decode(self, wire: object) -> str | None:
        """Our id when the wire value is an unchanged one of ours; None for a hashed or foreign id."""
        if not isinstance(wire, str) or not wire or wire.startswith("h0"):
            return None
        return wire


@dataclass(frozen=True)
class Hex128Codec:
    """Hyperliquid cloid: ``0x`` + 32 lowercase hex (128 bits)."""

    venue: str = "hyperliquid"

    def encode(self, ours: str) -> str:
        m = _OURS.fullmatch(ours)
        if m:
            digest, purpose, leg, attempt = m.groups()
            return f"0xfa01{digest}{ord(purpose):02x}{ord(leg):02x}{int(attempt):04x}"
        if not ours:
            raise ValueError("client order id must be non-empty")
        return "0xfb" + _hash_bytes(ours, 15).hex()

    def decode(self, wire: object) -> str | None:
        if not isinstance(wire, str) or not re.fullmatch(r"0x[0-9a-f]{32}", wire) or not wire.startswith("0xfa01"):
            return None
        body = wire[6:]
        digest, purpose, leg, attempt = body[:20], body[20:22], body[22:24], body[24:28]
        return f"fa{digest}{chr(int(purpose, 16))}{chr(int(leg, 16))}{int(attempt, 16):04d}"


@dataclass(frozen=True)
class IntegerCodec:
    """Venues taking an integer id: a ``bits``-wide hash, never 0 (not reversible)."""

    venue: str
    bits: int

    def encode(self, ours: str) -> int:
        if not ours:
            raise ValueError("client order id must be non-empty")
        value = int.from_bytes(_hash_bytes(ours, 8), "big") % ((1 << self.bits) - 1)
        return value + 1

    def decode(self, wire: object) -> str | None:
        return None


Codec = StringCodec | Hex128Codec | IntegerCodec

_DASHED = r"[A-Za-z0-9_-]"
CODECS: dict[str, Codec] = {
    "bybit": StringCodec("bybit", 36, _DASHED),
    "binanceusdm": StringCodec("binanceusdm", 36, r"[.A-Za-z0-9:/_-]"),
    "aster": StringCodec("aster", 36, r"[.A-Za-z0-9:/_-]"),
    "okx": StringCodec("okx", 32, r"[A-Za-z0-9]"),
    "paradex": StringCodec("paradex", 64, _DASHED),
    "extended": StringCodec("extended", 64, _DASHED),
    "hyperliquid": Hex128Codec(),
    "lighter": IntegerCodec("lighter", 48),
    "backpack": IntegerCodec("backpack", 32),
    "grvt": IntegerCodec("grvt", 63),
}


def codec_for(venue: str) -> Codec:
    """The codec of ``venue``; ``KeyError`` naming the venue when there is none."""
    try:
        return CODECS[venue]
    except KeyError:
        raise KeyError(f"no client order id codec for venue {venue!r}") from None


@dataclass
class CodecMemo:
    """A codec plus the reverse map of every id it encoded in this process."""

    codec: Codec
    _reverse: dict[str, str] = field(default_factory=dict)

    def encode(self, ours: str) -> str | int:
        wire = self.codec.encode(ours)
        self._reverse[str(wire)] = ours
        return wire

    def decode(self, wire: object) -> str | None:
        """Our id for a venue client id (reversible codecs, or remembered from ``encode``)."""
        if wire is None or wire == "":
            return None
        remembered = self._reverse.get(str(wire))
        return remembered if remembered is not None else self.codec.decode(wire)
