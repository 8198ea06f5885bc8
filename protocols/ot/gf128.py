"""GF(2^128) for the KOS correlation check, with GHASH (via AES-GCM) doing the bulk work.

The KOS check needs sum_j chi_j * q_j over a million 128-bit rows. numpy has no carry-less multiply,
and the bit-sliced / table methods cost 100+ ms per 2^20 rows here (the gathers are cache-bound), more
than the rest of the extension together. OpenSSL's GHASH, reached through ``AESGCM``, does the same
kind of sum with PCLMULQDQ at ~5 GB/s: the GCM tag of an empty message with associated data
X_1..X_n under key K is

    tag = E_K(J0) + L * H + sum_i X_i * H^(n + 2 - i),    H = E_K(0^128), L = the length block,

so it is an affine function of the data whose linear part is a polynomial hash with coefficients
chi_i = H^(n + 2 - i). ``PolyHash`` splits the rows into chunks of ``CHUNK_ROWS`` and gives each chunk
its own key (derived from the jointly tossed seed), so chi is a power of an independent random H_c
within a chunk. This is the "polynomial" (almost-universal) hash that emp-ot also uses for the KOS
check, not the independent uniform chi_j of the paper: a nonzero linear relation of the rows now fails
to be caught with probability <= (CHUNK_ROWS + 1) / 2^128 = 2^-114 instead of 2^-128. See the note in
``kos.py``.

Elements are 16-byte strings in GCM's encoding (the bit order of the GCM spec: bit 7 of byte 0 is the
coefficient of x^0; the unit is ``0x80 00 .. 00``). Any fixed linear bijection from bytes to the field
serves the check, so rows are hashed exactly as they sit in memory.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..prg import PRG

BLOCK = 16
CHUNK_ROWS = 1 << 14
ONE = b"\x80" + bytes(15)
_NONCE = bytes(12)
_R = 0xE1 << 120  # x^128 = x^7 + x^2 + x + 1, in GCM's reflected bit order


def gcm_mul(a: bytes, b: bytes) -> bytes:
    """The product of two field elements in GCM encoding (right-shift algorithm of the GCM spec)."""
    x = int.from_bytes(a, "big")
    v = int.from_bytes(b, "big")
    z = 0
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z.to_bytes(BLOCK, "big")


def xor_bytes(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")


class PolyHash:
    """An affine hash of a sequence of 128-bit rows: sum over chunks of one GCM tag per chunk.

    ``affine(rows) = lin(rows) + c(n)`` where ``lin`` is GF(2^128)-linear in the rows and ``c`` depends
    only on the seed and the number of rows, so differences of two affine hashes of equal length are
    linear, and ``linear`` gives the linear part alone.
    """

    def __init__(self, seed: bytes, nrows: int) -> None:
        if nrows <= 0:
            raise ValueError("nrows must be positive")
        self.nrows = nrows
        nchunks = -(-nrows // CHUNK_ROWS)
        keys = PRG(seed).random_bytes(BLOCK * nchunks)
        self._aeads = [AESGCM(keys[BLOCK * c : BLOCK * (c + 1)]) for c in range(nchunks)]
        self._zero_hash: bytes | None = None

    def affine(self, rows: np.ndarray | bytes | memoryview) -> bytes:
        """The hash of ``nrows`` rows given as ``(nrows, 2)`` uint64 (or the same bytes, row-major)."""
        data = memoryview(rows).cast("B") if isinstance(rows, np.ndarray) else memoryview(rows)
        if data.nbytes != BLOCK * self.nrows:
            raise ValueError(f"expected {self.nrows} rows of 16 bytes, got {data.nbytes} bytes")
        acc = 0
        step = BLOCK * CHUNK_ROWS
        for c, aead in enumerate(self._aeads):
            tag = aead.encrypt(_NONCE, b"", data[c * step : (c + 1) * step])
            acc ^= int.from_bytes(tag, "little")
        return acc.to_bytes(BLOCK, "little")

    def linear(self, rows: np.ndarray | bytes | memoryview) -> bytes:
        """The linear part: ``affine(rows) - affine(0)``, i.e. sum_j chi_j * row_j."""
        if self._zero_hash is None:
            self._zero_hash = self.affine(bytes(BLOCK * self.nrows))
        return xor_bytes(self.affine(rows), self._zero_hash)
