"""Authenticated additive shares.

Party ``i`` holds, for a secret vector ``x``, a value share ``x_i`` and a MAC share ``m_i`` with
``sum_i x_i = x`` and ``sum_i m_i = alpha * x`` where ``alpha = sum_i alpha_i`` is the global MAC key.
Linear operations are local: adding shares adds MACs; a public constant ``c`` is added to the value by
party 0 only and to every MAC share as ``alpha_i * c``. Nothing here communicates.

``SharedArray`` carries a logical numpy-like ``shape``; the field vectors underneath are flat, in C
order. The MAC share must never leave its party: with the opened value it reveals ``alpha_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .field import FieldError, PrimeField


@dataclass(frozen=True, eq=False)
class ShareContext:
    """What a party needs to do local share arithmetic: the field, its id, its MAC key share."""

    field: PrimeField
    party: int
    n: int
    alpha: np.ndarray  # this party's MAC key share as a (W, 1) field vector; never logged

    def __repr__(self) -> str:  # keep the key share out of reprs and logs
        return f"ShareContext(field={self.field.name}, party={self.party}, n={self.n})"


def _shape_of(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


class SharedArray:
    """This party's authenticated shares of a secret array (value shares + MAC shares)."""

    __slots__ = ("ctx", "value", "mac", "shape")
    __array_ufunc__ = None  # numpy operands on the left defer to our reflected operators

    def __init__(self, ctx: ShareContext, value: np.ndarray, mac: np.ndarray, shape: Any = None) -> None:
        n = value.shape[1]
        if mac.shape != value.shape:
            raise ValueError(f"value and MAC shares differ in shape: {value.shape} vs {mac.shape}")
        self.ctx = ctx
        self.value = value
        self.mac = mac
        self.shape = (n,) if shape is None else _shape_of(shape)
        if int(np.prod(self.shape)) != n:
            raise ValueError(f"shape {self.shape} does not hold {n} elements")

    def __repr__(self) -> str:
        return f"<SharedArray shape={self.shape} field={self.ctx.field.name} party={self.ctx.party}>"

    # ------------------------------------------------------------------ shape
    @property
    def size(self) -> int:
        return self.value.shape[1]

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d SharedArray")
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def reshape(self, *shape: Any) -> SharedArray:
        new = _shape_of(shape[0] if len(shape) == 1 else shape)
        if -1 in new:
            known = int(np.prod([d for d in new if d != -1]))
            new = tuple(self.size // max(known, 1) if d == -1 else d for d in new)
        return SharedArray(self.ctx, self.value, self.mac, new)

    def flatten(self) -> SharedArray:
        return self.reshape(self.size)

    def __getitem__(self, key: Any) -> SharedArray:
        idx = np.arange(self.size).reshape(self.shape)[key]
        flat = np.asarray(idx).reshape(-1)
        return SharedArray(self.ctx, self.value[:, flat], self.mac[:, flat], np.shape(idx))

    @staticmethod
    def concat(parts: Sequence[SharedArray]) -> SharedArray:
        """Concatenate flattened arrays into one 1-d array."""
        if not parts:
            raise ValueError("concat of no arrays")
        ctx = parts[0].ctx
        f = ctx.field
        return SharedArray(ctx, f.concat([p.value for p in parts]), f.concat([p.mac for p in parts]))

    def split(self, sizes: Sequence[int]) -> list[SharedArray]:
        out, i = [], 0
        for s in sizes:
            out.append(SharedArray(self.ctx, self.value[:, i : i + s], self.mac[:, i : i + s]))
            i += s
        if i != self.size:
            raise ValueError(f"split sizes add to {i}, array has {self.size}")
        return out

    # ------------------------------------------------------------------ linear algebra, all local
    def _public(self, c: Any) -> np.ndarray:
        """A public constant as a field vector of 1 or ``size`` elements."""
        f = self.ctx.field
        arr = np.asarray(c)
        if arr.ndim == 0:
            return f.encode(arr.reshape(1))
        try:
            arr = np.broadcast_to(arr, self.shape)
        except ValueError:
            raise FieldError(f"public operand of shape {arr.shape} does not fit shape {self.shape}") from None
        return f.encode(arr.reshape(-1))

    def _check_peer(self, other: SharedArray) -> None:
        if other.ctx is not self.ctx and other.ctx.field != self.ctx.field:
            raise ValueError("shared arrays come from different fields")
        if other.size != self.size and other.size != 1 and self.size != 1:
            raise ValueError(f"shapes {self.shape} and {other.shape} do not match")

    def _like(self, value: np.ndarray, mac: np.ndarray, other: SharedArray | None = None) -> SharedArray:
        shape = self.shape
        if other is not None and self.size == 1 and other.size != 1:
            shape = other.shape
        return SharedArray(self.ctx, value, mac, shape)

    def __add__(self, other: Any) -> SharedArray:
        f = self.ctx.field
        if isinstance(other, SharedArray):
            self._check_peer(other)
            a, b = _bcast(self, other)
            return self._like(f.add(a.value, b.value), f.add(a.mac, b.mac), other)
        return self.add_public_field(self._public(other))

    __radd__ = __add__

    def add_public_field(self, c: np.ndarray) -> SharedArray:
        """Add a public field vector (1 or ``size`` elements): party 0 adds it, every MAC gets alpha_i*c."""
        f = self.ctx.field
        value = f.add(self.value, c) if self.ctx.party == 0 else self.value
        mac = f.add(self.mac, f.mul(c, self.ctx.alpha))
        return SharedArray(self.ctx, value, mac, self.shape)

    def mul_public_field(self, c: np.ndarray) -> SharedArray:
        """Multiply by a public field vector (1 or ``size`` elements) elementwise."""
        f = self.ctx.field
        return SharedArray(self.ctx, f.mul(self.value, c), f.mul(self.mac, c), self.shape)

    def __neg__(self) -> SharedArray:
        f = self.ctx.field
        return SharedArray(self.ctx, f.neg(self.value), f.neg(self.mac), self.shape)

    def __sub__(self, other: Any) -> SharedArray:
        f = self.ctx.field
        if isinstance(other, SharedArray):
            self._check_peer(other)
            a, b = _bcast(self, other)
            return self._like(f.sub(a.value, b.value), f.sub(a.mac, b.mac), other)
        return self.add_public_field(self.ctx.field.neg(self._public(other)))

    def __rsub__(self, other: Any) -> SharedArray:
        return (-self).add_public_field(self._public(other))

    def __mul__(self, other: Any) -> SharedArray:
        """Multiplication by a public constant or public array; secret x secret needs ``Session.mul``."""
        if isinstance(other, SharedArray):
            raise TypeError("secret * secret needs communication: use `await s.mul(x, y)`")
        f = self.ctx.field
        c = self._public(other)
        return SharedArray(self.ctx, f.mul(self.value, c), f.mul(self.mac, c), self.shape)

    __rmul__ = __mul__

    def sum(self) -> SharedArray:
        f = self.ctx.field
        v = f.from_ints([f.sum(self.value)])
        m = f.from_ints([f.sum(self.mac)])
        return SharedArray(self.ctx, v, m, ())


def _expand(v: np.ndarray, n: int) -> np.ndarray:
    return v if v.shape[1] == n or n == 1 else np.repeat(v, n, axis=1)


def _bcast(a: SharedArray, b: SharedArray) -> tuple[SharedArray, SharedArray]:
    """Broadcast a 1-element operand to the other's size."""
    if a.size == b.size:
        return a, b
    if a.size == 1:
        return SharedArray(a.ctx, _expand(a.value, b.size), _expand(a.mac, b.size), b.shape), b
    return a, SharedArray(b.ctx, _expand(b.value, a.size), _expand(b.mac, a.size), a.shape)
