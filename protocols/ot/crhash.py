"""The tweakable correlation-robust hash that turns correlated OTs into random OTs.

After IKNP/KOS the sender holds q_j and q_j + Delta and the receiver t_j = q_j + x_j Delta; hashing
breaks the correlation so that the sender's two messages are independent random strings. We use the
fixed-key-AES construction of Guo, Katz, Wang and Yu ("Efficient and Secure Multiparty Computation from
Fixed-Key Block Ciphers", S&P 2020), proven tweakable circular correlation robust (TCCR) for a random
permutation pi:

    H(j, x) = pi(pi(x) + j) + pi(x)

with pi = AES-128 under a fixed public key and the tweak j = the global OT index (low 64 bits of the
block, high bits zero). The one-call MMO form pi(x + j) + x + j is *not* enough: (j, x) and
(j', x + j + j') would collide. A tweak must never repeat with the same Delta, which is why the KOS
classes keep a running OT index.

AES-ECB runs through ``cryptography`` with ``update_into`` into reused buffers, in cache-sized chunks:
~670 M blocks/s here, against ~64 M/s for the allocating ``update``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK_ROWS = 1 << 15
FIXED_KEY = hashlib.sha256(b"trio-spdz/ot/tccr-fixed-key/v1").digest()[:16]


class TCCRHash:
    """``H(j, x)`` for rows x of a ``(n, 2)`` uint64 array and consecutive tweaks j = start, start+1, ...

    Holds its buffers, so keep one per OT-extension endpoint; not safe for concurrent use.
    """

    def __init__(self) -> None:
        self._ecb = Cipher(algorithms.AES(FIXED_KEY), modes.ECB()).encryptor()  # noqa: S305 (a permutation, not encryption)
        n = 2 * CHUNK_ROWS
        self._a = np.empty(n + 4, dtype=np.uint64)  # + 32 bytes: update_into wants 15 bytes of slack
        self._b = np.empty(n + 4, dtype=np.uint64)
        self._c = np.empty(n + 4, dtype=np.uint64)
        self._x = np.empty(n, dtype=np.uint64)
        self._tweak = np.zeros(n, dtype=np.uint64)  # (j, 0) per row: the high words stay zero
        self._ramp = np.arange(CHUNK_ROWS, dtype=np.uint64)

    def hash_rows(self, start: int, rows: np.ndarray, xor: np.ndarray | None = None) -> np.ndarray:
        """``out[i] = H(start + i, rows[i] ^ xor)`` as a new ``(n, 2)`` uint64 array.

        ``xor`` (a 2-word row, e.g. Delta) is applied to every row first, without a full-size copy.
        """
        n = rows.shape[0]
        if rows.dtype != np.uint64 or rows.shape != (n, 2):
            raise ValueError("rows must be uint64 of shape (n, 2)")
        if not (0 <= start and start + n < (1 << 64)):
            raise ValueError("OT index out of range")
        flat_rows = np.ascontiguousarray(rows).reshape(-1)
        out = np.empty(2 * n, dtype=np.uint64)
        pattern = None if xor is None else np.tile(np.asarray(xor, dtype=np.uint64).reshape(2), CHUNK_ROWS)
        mv_a = memoryview(self._a).cast("B")
        mv_b = memoryview(self._b).cast("B")
        mv_c = memoryview(self._c).cast("B")
        for r0 in range(0, n, CHUNK_ROWS):
            k = 2 * min(CHUNK_ROWS, n - r0)  # words in this chunk
            src = flat_rows[2 * r0 : 2 * r0 + k]
            if pattern is not None:
                np.bitwise_xor(src, pattern[:k], out=self._x[:k])
                src = self._x[:k]
            self._ecb.update_into(memoryview(src).cast("B"), mv_a[: 8 * k + 16])  # a = pi(x)
            np.add(self._ramp[: k // 2], np.uint64(start + r0), out=self._tweak[0:k:2])  # j = start + r0 + i
            np.bitwise_xor(self._a[:k], self._tweak[:k], out=self._b[:k])
            self._ecb.update_into(mv_b[: 8 * k], mv_c[: 8 * k + 16])  # c = pi(a ^ j)
            np.bitwise_xor(self._c[:k], self._a[:k], out=out[2 * r0 : 2 * r0 + k])
        return out.reshape(n, 2)
