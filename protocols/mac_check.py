"""The arithmetic of the batched MAC check: random linear combinations of opened values and MACs.

For opened values ``a_j`` with MAC shares ``m_j`` a party needs ``A = sum_j r_j a_j`` and
``M = sum_j r_j m_j`` (mod p) for coefficients ``r_j`` drawn from the jointly tossed seed; it then
commits to ``sigma = M - alpha_i * A``.

Coefficients are uniform 64-bit integers, not full field elements. If some opened value is wrong
(error vector ``e != 0``), the check can only pass if ``sum_j r_j e_j = 0``, which for independent
uniform ``r_j`` in ``[0, 2^64)`` happens with probability at most ``2^-64`` (Schwartz-Zippel, degree
1), or if the adversary guesses ``alpha`` (``1/p``). Both are far below the ``2^-40`` we promise.

Why 64-bit coefficients: the sums then need no modular multiplication at all. Split every
coefficient into eight 8-bit limbs and every value into 32-bit halves (a free ``uint32`` view); each
limb product is below ``2^40``, so a sum over ``2^13`` rows is below ``2^53`` and exact in float64.
One BLAS matrix product (value halves x coefficient limbs) per chunk yields every limb-pair sum at
once; Python ints recombine the handful of results. The value halves are laid out as contiguous rows:
writing them as matrix columns was five times slower. At p = 2^127 - 1 this is several times cheaper
than two field dot products.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .field import PrimeField
from .prg import PRG

_ROWS = 1 << 13  # rows per matrix product: 2^13 sums of products below 2^40 stay below 2^53

if sys.byteorder != "little":  # the uint16 views below assume little-endian words
    raise ImportError("trio-spdz's MAC check needs a little-endian machine")


def combine(field: PrimeField, prg: PRG, vectors: Sequence[np.ndarray]) -> list[int]:
    """``sum_j r_j v_j mod p`` for each vector in ``vectors`` (all of one length), with shared ``r_j``.

    The coefficients are the next ``8 * length`` bytes of ``prg``, read as little-endian uint64.
    Chunks run on the field's thread pool; each returns exact limb sums that are added as ints.
    """
    if not vectors:
        return []
    n = vectors[0].shape[1]
    if any(v.shape[1] != n for v in vectors):
        raise ValueError("combine needs vectors of equal length")
    words = field.words
    rows = 2 * words * len(vectors)  # one row per 32-bit half of every word of every vector
    coeff_all = np.frombuffer(prg.random_bytes(8 * n), dtype=np.uint8).reshape(n, 8)
    partials: list[np.ndarray] = []

    def body(i: int, j: int) -> None:
        for lo in range(i, j, _ROWS):
            hi = min(lo + _ROWS, j)
            cnt = hi - lo
            block = np.empty((rows, cnt), dtype=np.float64)
            for vi, v in enumerate(vectors):
                for w in range(words):
                    r = 2 * (vi * words + w)
                    halves = np.ascontiguousarray(v[w, lo:hi]).view(np.uint32).reshape(cnt, 2)
                    block[r : r + 2] = halves.T
            partials.append((block @ coeff_all[lo:hi].astype(np.float64)).astype(np.int64))

    field.run_chunks(n, body)
    acc = np.zeros((rows, 8), dtype=object)
    for g in partials:
        acc += g
    out = []
    for vi in range(len(vectors)):
        total = 0
        for w in range(words):
            for h in range(2):
                r = 2 * (vi * words + w) + h
                for b in range(8):
                    total += int(acc[r, b]) << (8 * b + 32 * h + 64 * w)
        out.append(total % field.modulus)
    return out


def combine_reference(field: PrimeField, prg: PRG, vectors: Sequence[np.ndarray]) -> list[int]:
    """The same sums with Python ints: the definition ``combine`` must match (tests use it)."""
    if not vectors:
        return []
    n = vectors[0].shape[1]
    r = [int(x) for x in np.frombuffer(prg.random_bytes(8 * n), dtype="<u8")]
    return [sum(rj * vj for rj, vj in zip(r, field.to_ints(v), strict=True)) % field.modulus for v in vectors]
