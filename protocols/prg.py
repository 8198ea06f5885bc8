"""AES-128-CTR pseudo-random generator.

Everything secret in trio-spdz (shares, masks, MAC keys, coin-toss seeds) is drawn from this PRG, seeded
from ``os.urandom`` unless a seed is given (a jointly tossed seed, or a fixed one in tests). CTR mode over
a zero buffer is the fastest keystream the ``cryptography`` package offers; we write it into a reused
buffer because fresh large allocations cost page faults.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 16


class PRG:
    """A stream of pseudo-random bytes from AES-128-CTR keyed by a 16-byte seed."""

    __slots__ = ("_enc", "_zeros")

    def __init__(self, seed: bytes | None = None) -> None:
        if seed is None:
            seed = os.urandom(SEED_BYTES)
        if len(seed) < SEED_BYTES:
            raise ValueError(f"PRG seed must be at least {SEED_BYTES} bytes, got {len(seed)}")
        key = seed[:SEED_BYTES]
        nonce = seed[SEED_BYTES : SEED_BYTES + 16].ljust(16, b"\0")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        self._zeros = b""

    def random_bytes(self, nbytes: int) -> bytes:
        if len(self._zeros) < nbytes:
            self._zeros = bytes(nbytes)
        return self._enc.update(memoryview(self._zeros)[:nbytes])

    def random_words(self, shape: tuple[int, ...] | int) -> np.ndarray:
        """Uniform uint64 words of the given shape."""
        count = int(np.prod(shape))
        return np.frombuffer(self.random_bytes(8 * count), dtype=np.uint64).reshape(shape).copy()

    def random_below(self, bound: int) -> int:
        """One uniform integer in [0, bound), by rejection."""
        if bound <= 0:
            raise ValueError("bound must be positive")
        nbits = bound.bit_length()
        nbytes = (nbits + 7) // 8
        while True:
            v = int.from_bytes(self.random_bytes(nbytes), "little") & ((1 << nbits) - 1)
            if v < bound:
                return v
