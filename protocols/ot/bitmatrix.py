"""The 128 x m bit-matrix transpose at the heart of IKNP/KOS, on uint64 words.

OT extension generates its matrix by *columns* (one PRG stream per base OT, m bits long) but uses it by
*rows* (one 128-bit string per extended OT). ``np.unpackbits``/``packbits`` would do it in a few lines
but moves one byte per bit and is ~10x slower. Instead we use the recursive block swap (Hacker's
Delight 7-3) on 64 x 64 blocks of bits, vectorised over every block at once: six rounds, in round s
rows i and i+s (i & s == 0) exchange the high s-bit halves of i's fields with the low halves of i+s's.
The rounds run on cache-sized slices of columns (a slice of the two 64-row bands fits in L2), laid out so
that the last step is a plain 2-d transpose of words, done in slabs of 16 rows (numpy's own transposed
copy is not cache-blocked and was 2x slower).

Bit convention (everything in ``protocols.ot`` uses it): a bit string of length m is m/64 uint64 words,
bit j is ``(word[j // 64] >> (j % 64)) & 1`` -- i.e. little-endian bytes, LSB first, the layout of
``np.packbits(bits, bitorder="little")``.
"""

from __future__ import annotations

import numpy as np

_MASKS = (
    (32, np.uint64(0x00000000FFFFFFFF)),
    (16, np.uint64(0x0000FFFF0000FFFF)),
    (8, np.uint64(0x00FF00FF00FF00FF)),
    (4, np.uint64(0x0F0F0F0F0F0F0F0F)),
    (2, np.uint64(0x3333333333333333)),
    (1, np.uint64(0x5555555555555555)),
)
_SHIFTS = {s: np.uint64(s) for s, _ in _MASKS}
CHUNK_WORDS = 2048


def transpose_128(cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows of a 128 x m bit matrix given by columns.

    ``cols`` is ``uint64`` of shape ``(128, W)`` (column l = the m = 64 W bits of ``cols[l]``); returns
    ``uint64`` of shape ``(m, 2)`` whose row j holds bit l of row j at word l // 64, bit l % 64.
    """
    if cols.dtype != np.uint64 or cols.ndim != 2 or cols.shape[0] != 128:
        raise ValueError(f"expected uint64 of shape (128, W), got {cols.dtype} {cols.shape}")
    width = cols.shape[1]
    if out is None:
        out = np.empty((64 * width, 2), dtype=np.uint64)
    elif out.shape != (64 * width, 2) or out.dtype != np.uint64:
        raise ValueError("out has the wrong shape or dtype")
    bands = cols.reshape(2, 64, width)
    flat_out = out.reshape(width, 128)
    chunk = min(CHUNK_WORDS, width)
    # work[k, w, c] = bit-row k of band w (columns 64 w .. 64 w + 63) at word c: after the rounds,
    # work[k, w, c] is word w of matrix row 64 c + k, so the output is a plain 2-d transpose
    work = np.empty((64, 2, chunk), dtype=np.uint64)
    tmp = np.empty((32, 2, chunk), dtype=np.uint64)
    for c0 in range(0, width, chunk):
        n = min(chunk, width - c0)
        x = work[:, :, :n]
        x[...] = bands[:, :, c0 : c0 + n].transpose(1, 0, 2)
        for s, mask in _MASKS:
            x5 = work.reshape(64 // (2 * s), 2, s, 2, chunk)[..., :n]
            lo, hi = x5[:, 0], x5[:, 1]
            t = tmp.reshape(64 // (2 * s), s, 2, chunk)[..., :n]
            shift = _SHIFTS[s]
            np.right_shift(lo, shift, out=t)
            np.bitwise_xor(t, hi, out=t)
            np.bitwise_and(t, mask, out=t)
            np.bitwise_xor(hi, t, out=hi)
            np.left_shift(t, shift, out=t)
            np.bitwise_xor(lo, t, out=lo)
        rows = x.reshape(128, n)
        dest = flat_out[c0 : c0 + n]
        for r in range(0, 128, 16):  # slabs: numpy's transposed copy is not cache-blocked
            dest[:, r : r + 16] = rows[r : r + 16].T
    return out


def pack_bits(bits: np.ndarray, nwords: int) -> np.ndarray:
    """A bool/0-1 vector as ``nwords`` uint64 words (zero-padded), in the convention above."""
    packed = np.packbits(np.asarray(bits, dtype=bool), bitorder="little")
    buf = np.zeros(8 * nwords, dtype=np.uint8)
    buf[: packed.size] = packed
    return buf.view(np.uint64)


def unpack_bits(words: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` bits of uint64 ``words`` as a bool vector."""
    raw = np.ascontiguousarray(words).view(np.uint8)
    return np.unpackbits(raw, count=count, bitorder="little").astype(bool)
