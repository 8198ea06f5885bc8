"""Authenticated bits under a global binary MAC key: the local arithmetic (nothing here communicates).

Party ``i`` holds a key share ``Delta_i`` in {0,1}^128; the global key is ``Delta = XOR_i Delta_i``.
A secret bit ``x`` is XOR-shared, ``x = XOR_i x_i``, with MAC shares ``m_i`` in {0,1}^128 such that
``XOR_i m_i = x * Delta`` (SPDZ's MAC over GF(2^128), with the bit embedded as 0 or 1). One MAC share per
bit per party: TinyOT's pairwise MACs would need n - 1 keys and n - 1 MACs per bit per party.

Linear operations are local: XOR of two vectors XORs shares and MAC shares; XOR with a public bit
``c`` flips party 0's share where ``c = 1`` and XORs ``c * Delta_i`` into every party's MAC share;
AND with a public bit vector keeps shares and MACs where it is 1. NOT is XOR with 1.

Layout: shares are ``uint8`` arrays of 0/1 (one byte per bit: numpy indexes and masks them cheaply;
they are packed only on the wire), MAC shares ``uint64`` of shape ``(m, 2)``, two little-endian
words per 128-bit string, as the OT code writes them. A MAC share must never leave its party: with
the opened bit it reveals ``Delta_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..prg import PRG

U64 = np.uint64


@dataclass(frozen=True, eq=False)
class BinaryContext:
    """A party's binary MAC key share and its place in the party set."""

    party: int
    n: int
    delta: np.ndarray  # Delta_i as uint64 of shape (2,); never logged

    def __repr__(self) -> str:  # keep the key share out of reprs and logs
        return f"BinaryContext(party={self.party}, n={self.n})"


def as_bits(values: Any, size: int | None = None, what: str = "bits") -> np.ndarray:
    """A 1-d ``uint8`` 0/1 copy of ``values`` (bool or integer 0/1); ``ValueError`` for anything else."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-d array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu" or (arr.size and not np.all((arr == 0) | (arr == 1))):
            raise ValueError(f"{what} must be 0/1 or bool")
    out = arr.astype(np.uint8)
    if size is not None and out.size not in (1, size):
        raise ValueError(f"{what} of length {out.size} does not fit {size} bits")
    return out


def take_rows(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rows[index]`` for (m, 2) uint64 rows, gathered as 16-byte items (a few times faster than
    numpy's fancy indexing of a 2-d array, which copies word by word)."""
    flat = np.ascontiguousarray(rows).view(np.dtype("V16")).reshape(-1)
    return np.take(flat, index).view(U64).reshape(-1, 2)


def times_delta(bits: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Rows ``b_j * delta`` (uint64 (m, 2)) for 0/1 ``bits``: a lookup in the table (0, delta), one
    16-byte item per bit (several times faster than masking word by word)."""
    table = np.zeros((2, 2), dtype=U64)
    table[1] = np.asarray(delta, dtype=U64).reshape(2)
    index = np.asarray(bits, dtype=np.uint8).reshape(-1)
    return np.take(table.view(np.dtype("V16")).reshape(2), index).view(U64).reshape(-1, 2)


class AuthBits:
    """This party's shares of a vector of secret bits: value shares (uint8 0/1) and MAC shares."""

    __slots__ = ("ctx", "bits", "macs")
    __array_ufunc__ = None  # numpy operands on the left defer to our reflected operators

    def __init__(self, ctx: BinaryContext, bits: np.ndarray, macs: np.ndarray) -> None:
        if bits.dtype != np.uint8 or bits.ndim != 1:
            raise ValueError(f"bit shares must be 1-d uint8, got {bits.dtype} {bits.shape}")
        if macs.dtype != U64 or macs.shape != (bits.size, 2):
            raise ValueError(
                f"MAC shares must be uint64 of shape ({bits.size}, 2), got {macs.dtype} {macs.shape}"
            )
        self.ctx = ctx
        self.bits = bits
        self.macs = macs

    def __repr__(self) -> str:
        return f"<AuthBits size={self.size} party={self.ctx.party}>"

    @classmethod
    def public(cls, ctx: BinaryContext, values: Any) -> AuthBits:
        """Shares of public bits: party 0 holds them, every MAC share is ``c * Delta_i``."""
        c = as_bits(values)
        bits = c.copy() if ctx.party == 0 else np.zeros_like(c)
        return cls(ctx, bits, times_delta(c, ctx.delta))

    @classmethod
    def empty(cls, ctx: BinaryContext) -> AuthBits:
        return cls(ctx, np.zeros(0, dtype=np.uint8), np.zeros((0, 2), dtype=U64))

    @property
    def size(self) -> int:
        return self.bits.size

    def __len__(self) -> int:
        return self.bits.size

    def __getitem__(self, key: Any) -> AuthBits:
        """A slice is a view (as in numpy); integers and index arrays gather copies."""
        if isinstance(key, slice):
            return AuthBits(self.ctx, self.bits[key], self.macs[key])
        flat = np.asarray(np.arange(self.size)[key] if not isinstance(key, np.ndarray) else key).reshape(-1)
        return AuthBits(self.ctx, self.bits[flat], take_rows(self.macs, flat))

    @staticmethod
    def concat(parts: Sequence[AuthBits]) -> AuthBits:
        if not parts:
            raise ValueError("concat of no bit vectors")
        return AuthBits(
            parts[0].ctx,
            np.concatenate([p.bits for p in parts]),
            np.concatenate([p.macs for p in parts]),
        )

    def split(self, sizes: Sequence[int]) -> list[AuthBits]:
        if sum(sizes) != self.size:
            raise ValueError(f"split sizes add to {sum(sizes)}, the vector has {self.size}")
        out, i = [], 0
        for s in sizes:
            out.append(AuthBits(self.ctx, self.bits[i : i + s], self.macs[i : i + s]))
            i += s
        return out

    # ------------------------------------------------------------------ linear operations, all local
    def _peer(self, other: AuthBits) -> None:
        if other.ctx is not self.ctx and (other.ctx.party, other.ctx.n) != (self.ctx.party, self.ctx.n):
            raise ValueError("bit vectors of different parties")
        if other.size != self.size:
            raise ValueError(f"bit vectors of {self.size} and {other.size} bits")

    def __xor__(self, other: Any) -> AuthBits:
        if isinstance(other, AuthBits):
            self._peer(other)
            return AuthBits(self.ctx, self.bits ^ other.bits, self.macs ^ other.macs)
        return self.xor_public(other)

    __rxor__ = __xor__
    __add__ = __xor__  # addition in GF(2)
    __radd__ = __xor__
    __sub__ = __xor__

    def xor_public(self, values: Any) -> AuthBits:
        """XOR with public bits (one, or one per element)."""
        c = as_bits(values, self.size)
        bits = self.bits ^ c if self.ctx.party == 0 else self.bits.copy()
        rows = times_delta(c, self.ctx.delta)
        return AuthBits(self.ctx, bits, self.macs ^ rows)

    def __invert__(self) -> AuthBits:
        return self.xor_public(1)

    def and_public(self, values: Any) -> AuthBits:
        """AND with public bits (one, or one per element): keep shares and MACs where the bit is 1."""
        c = as_bits(values, self.size)
        keep = np.broadcast_to(c, (self.size,))
        return AuthBits(self.ctx, self.bits & keep, np.where(keep[:, None].astype(bool), self.macs, U64(0)))

    def __and__(self, other: Any) -> AuthBits:
        if isinstance(other, AuthBits):
            raise TypeError("secret AND secret needs communication and an AND triple")
        return self.and_public(other)

    __rand__ = __and__


def uniform_values(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uniform values below ``2^k`` (uint64 up to 64 bits, Python ints above) and their bits,
    element by element, least significant first."""
    words = -(-k // 64)
    w = PRG().random_words((count, words))
    if k % 64:
        w[:, -1] &= U64((1 << (k % 64)) - 1)
    shifts = np.arange(64, dtype=U64)
    bits = np.concatenate([(w[:, i, None] >> shifts) & U64(1) for i in range(words)], axis=1)
    bits = bits[:, :k].astype(np.uint8).reshape(-1)
    if words == 1:
        return w[:, 0].copy(), bits
    values = np.zeros(count, dtype=object)
    for i in range(words):
        values += w[:, i].astype(object) << (64 * i)
    return values, bits
