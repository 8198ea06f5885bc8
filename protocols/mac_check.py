"""The arithmetic of the batched MAC check: random linear combinations of opened values and MACs.

For opened values ``a_j`` with MAC shares ``m_j`` a party needs ``A = sum_j r_j a_j`` and
``M = sum_j r_j m_j`` (mod p) for coefficients ``r_j`` drawn from the jointly tossed seed; it then
commits to ``sigma = M - alpha_i * A``.

Coefficients are uniform 64-bit integers, not full field elements. If some opened value is wrong
(error vector ``e != 0``), the check can only pass if ``sum_j r_j e_j = 0``, which for independent
uniform ``r_j`` in ``[0, 2^64)`` happens with probability at most ``2^-64`` (Schwartz-Zippel, degree
1), or if the adversary guesses ``alpha`` (``1/p``). Both are far below the ``2^-40`` we promise.

Why 64-bit coefficients: the sums then need no modular multiplication at all. Split every
coefficient and every value into 16-bit limbs; each limb product is below ``2^32``, so a sum of up to
``2^20`` of them is below ``2^52`` and exact in float64. One BLAS matrix product (coefficient limbs
x value limbs) over a chunk yields every limb-pair sum at once; Python ints recombine the handful of
results. At p = 2^127 - 1 this is several times cheaper than two field dot products.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .field import PrimeField
from .prg import PRG

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
    width = 4 * words * len(vectors)
    coeff_all = np.frombuffer(prg.random_bytes(8 * n), dtype="<u2").reshape(n, 4)
    partials: list[np.ndarray] = []

    def body(i: int, j: int) -> None:
        cnt = j - i
        block = np.empty((cnt, width), dtype=np.float64)
        for vi, v in enumerate(vectors):
            for w in range(words):
                col = (vi * words + w) * 4
                row = np.ascontiguousarray(v[w, i:j])
                block[:, col : col + 4] = row.view(np.uint16).reshape(cnt, 4)
        partials.append((coeff_all[i:j].astype(np.float64).T @ block).astype(np.int64))

    field.run_chunks(n, body)
    acc = np.zeros((4, width), dtype=object)
    for g in partials:
        acc += g
    out = []
    for vi in range(len(vectors)):
        total = 0
        for w in range(words):
            base = (vi * words + w) * 4
            for i in range(4):
                for k in range(4):
                    total += int(acc[i, base + k]) << (16 * (i + k) + 64 * w)
        out.append(total % field.modulus)
    return out


def combine_reference(field: PrimeField, prg: PRG, vectors: Sequence[np.ndarray]) -> list[int]:
    """The same sums with Python ints: the definition ``combine`` must match (tests use it)."""
    if not vectors:
        return []
    n = vectors[0].shape[1]
    r = [int(x) for x in np.frombuffer(prg.random_bytes(8 * n), dtype="<u8")]
    return [sum(rj * vj for rj, vj in zip(r, field.to_ints(v), strict=True)) % field.modulus for v in vectors]
