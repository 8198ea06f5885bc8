"""COPE: correlated oblivious product evaluation with the MAC key, MASCOT's authentication engine.

Between an *owner* P_i (who has values ``x``) and a *key holder* P_j (who has its MAC key share
``alpha_j``), one COPE extension gives P_i a vector ``t`` and P_j a vector ``q`` with
``q + t = alpha_j * x``: additive shares of P_j's share of the MAC of ``x``, and neither learns the
other's input.

Set-up (once per ordered pair and MAC key): ``k = bits(p)`` random OTs in which P_j chooses with the
bits ``Delta_l`` of ``alpha_j``. P_i keeps both seeds ``(K0_l, K1_l)``, P_j keeps ``K_{Delta_l, l}``.
``MascotParty`` takes them from the pair's OT extension (KOS unless configured otherwise), in which
P_j is already the receiver (``setup_from``): ``k`` extended OTs instead of ``k`` more base OTs, which
halves the public-key work of a set-up. That is MASCOT's own instantiation: COPE only needs an OT
functionality with random messages and the receiver's chosen bits, which is what ``ot.extension``'s
interface promises (KOS keeps the promise by its consistency check). ``setup`` (base OTs) remains for
COPE on its own.

Extend ``x`` (``m`` elements), the l-th of ``k`` columns:

    both       t0_l = F(K0_l), t1_l = F(K1_l)        (F: the next m elements of an AES-CTR stream)
    P_i sends  u_l  = t0_l - t1_l + x
    P_j gets   q_l  = t_{Delta_l, l} + Delta_l * u_l  = t0_l + Delta_l * x

and with the gadget vector ``g = (1, 2, 4, ..)``: ``q = sum_l 2^l q_l = sum_l 2^l t0_l + alpha_j x``,
so P_i takes ``t = -sum_l 2^l t0_l``.

F keeps one AES-128-CTR stream per base-OT seed for the life of the set-up (key: a hash of the seed),
so every extend reads fresh output without re-keying 2k ciphers per call, and one ``update_into`` per
column and word writes the elements straight into a reused buffer. Elements are drawn by masking to
``bits(p)`` bits and redrawing the value p from the same column's stream: exactly uniform, and both ends
that hold a seed redraw identically.

The gadget sums are computed exactly with 16-bit limbs (``gadget_sum``): since ``2^k = 1 (mod p)``,
limb i of column l contributes ``limb * 2^((16 i + l) mod k)``, so each limb index is a *rotation* of the
columns; summing limbs with equal exponent first (small integers, no reduction) and shifting once per
exponent replaces 2k modular additions per element by ~8 plain ones. The receiver's ``Delta_l * u_l``
terms join the same sum, so it does no modular addition at all.

A cheating P_i can send ``u_l`` built from different ``x`` in different columns; COPE alone does not
stop that. The authentication check (``auth.py``) does: the MACs then fail to match a random linear
combination except with probability about 1/p.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from ..concurrency import run_sync
from ..errors import ProtocolError
from ..field import FieldError, PrimeField
from ..net import PairChannel, expect_bytes
from ..ot.base import base_ot_recv, base_ot_send
from ..ot.extension import OTExtensionReceiver, OTExtensionSender

U64 = np.uint64
M32 = U64(0xFFFFFFFF)
LIMB = 16  # bits per limb in the gadget sums
GADGET_CHUNK = 2048  # elements per pass: the (k, chunk) limb accumulator stays in L2
COPE_CHUNK = 1024  # elements per COPE pass; both ends must agree (it fixes the order of the PRF output)


def _top_mask(field: PrimeField) -> U64:
    """The mask of the valid bits of an element's top word."""
    return U64((1 << (field.bits - 64 * (field.words - 1))) - 1)


# ---------------------------------------------------------------------------------------- gadget sums
def field_limbs(a: np.ndarray) -> list[np.ndarray]:
    """16-bit limb views of a ``(W, k, m)`` uint64 array (last axis contiguous): limb i is ``(k, m)``."""
    w, k, m = a.shape
    v = a.view(np.uint16).reshape(w, k, m, 4)
    return [v[i // 4, :, :, i % 4] for i in range(4 * w)]


def row_limbs(rows: np.ndarray, k: int) -> list[np.ndarray]:
    """Limb views of ``k * m`` OT strings (uint64 ``(k*m, 2)``, string ``l * m + e`` in column l)."""
    v = rows.reshape(k, -1, 2).view(np.uint16)  # (k, m, 8)
    return [v[:, :, i] for i in range(8)]


Source = tuple  # ("field", a) | ("rows", rows) | ("picked", a, bits): see gadget_sum


def gadget_sum(field: PrimeField, m: int, sources: Sequence[Source]) -> np.ndarray:
    """``sum_l 2^l x_l mod p`` over every source, canonical, as a ``(W, m)`` field vector.

    Sources, each giving k columns of m values:

    * ``("field", a)``: ``a`` uint64 ``(W, k, m)``, last axis contiguous, values in ``[0, p]`` (the sum
      is exact mod p, so p itself may appear);
    * ``("rows", rows)``: raw OT strings, uint64 ``(k*m, 2)`` with string ``l m + e`` in column l, cut
      to their low ``bits(p)`` bits (congruent to ``ot_to_field`` mod p);
    * ``("picked", a, bits)``: ``a`` as for "field", times ``bits`` (bool ``(k, m)``, or ``(k, 1)`` for
      one bit per column), chunk by chunk, so the product never exists as a whole.
    """
    k, words = field.bits, field.words
    nlimbs = -(-k // LIMB)  # limbs that hold bits below k
    top_bits = k - LIMB * (nlimbs - 1)
    top_mask = np.uint16((1 << top_bits) - 1)
    out = np.empty((words, m), dtype=U64)
    chunk = max(1, min(GADGET_CHUNK, m))
    acc = np.zeros((LIMB * nlimbs, chunk), dtype=np.uint32)  # rows >= k stay zero
    z = np.empty((nlimbs, chunk), dtype=U64)
    tmp = np.empty((nlimbs, chunk), dtype=U64)
    masked = np.empty((k, chunk), dtype=np.uint16)
    picked: np.ndarray | None = None
    views = []
    for src in sources:
        if src[0] == "rows":
            views.append((row_limbs(src[1], k), True))
        elif src[0] == "field":
            views.append((field_limbs(src[1]), False))
        elif src[0] == "picked":
            views.append((None, False))
        else:
            raise ValueError(f"unknown gadget source {src[0]!r}")
    for c0 in range(0, m, chunk):
        n = min(chunk, m - c0)
        y = acc[:, :n]
        y[:k] = 0
        for src, (limbs, truncate) in zip(sources, views, strict=True):
            if limbs is None:  # ("picked", a, bits): the product for this chunk only
                if picked is None:
                    picked = np.empty((words, k, chunk), dtype=U64)
                bits = src[2] if src[2].shape[1] == 1 else src[2][:, c0 : c0 + n]
                pk = picked[:, :, :n]
                np.multiply(src[1][:, :, c0 : c0 + n], bits[None], out=pk, dtype=U64)
                limbs, c_lo = field_limbs(pk), 0
            else:
                c_lo = c0
            for i in range(nlimbs):
                part = limbs[i][:, c_lo : c_lo + n]
                if truncate and i == nlimbs - 1:
                    part = np.bitwise_and(part, top_mask, out=masked[:, :n])
                r = (LIMB * i) % k  # limb i of column l has weight 2^((r + l) mod k)
                np.add(y[r:k], part[: k - r], out=y[r:k])
                if r:
                    np.add(y[:r], part[k - r :], out=y[:r])
        # z[pos] = sum_s y[16 pos + s] 2^s  (< 2^40), the value is sum_pos z[pos] 2^(16 pos)
        zz, tt = z[:, :n], tmp[:, :n]
        y3 = y.reshape(nlimbs, LIMB, n)
        zz[...] = y3[:, 0]
        for sh in range(1, LIMB):
            np.left_shift(y3[:, sh], U64(sh), out=tt, dtype=U64)
            np.add(zz, tt, out=zz)
        _reduce_positions(field, zz, out[:, c0 : c0 + n])
    return out


def _reduce_positions(field: PrimeField, z: np.ndarray, out: np.ndarray) -> None:
    """``sum_pos z[pos] 2^(16 pos) mod p`` (each ``z[pos] < 2^40``), canonical, into ``out``."""
    if field.words == 1:  # k = 61, four positions
        lo = z[0] + (z[1] << U64(16))  # < 2^57, at bit 0
        hi = z[2] + (z[3] << U64(16))  # < 2^57, at bit 32: 2^61 = 1 splits it at bit 29
        v = lo + ((hi & U64((1 << 29) - 1)) << U64(32)) + (hi >> U64(29))  # < 2^62
        v = (v & U64(field.modulus)) + (v >> U64(61))  # <= p + 1
        np.minimum(v, v - U64(field.modulus), out=out[0])
        return
    # k = 127, eight positions: 32-bit limbs with carries, then fold bits >= 127 (2^127 = 1)
    r = []
    carry = np.zeros_like(z[0])
    for q in range(4):
        t = z[2 * q] + (z[2 * q + 1] << U64(16)) + carry  # < 2^57
        r.append(t & M32)
        carry = t >> U64(32)
    top = (r[3] >> U64(31)) + (carry << U64(1))  # bits 127, 128, ..: weights 1, 2, ..
    lo, hi = out[0], out[1]
    np.bitwise_or(r[0], r[1] << U64(32), out=lo)
    np.bitwise_or(r[2], (r[3] & U64(0x7FFFFFFF)) << U64(32), out=hi)
    lo += top
    hi += lo < top  # now hi <= 2^63 - 1 + 1
    bad = np.flatnonzero(hi >= U64((1 << 63) - 1))  # 2^127 + small, or exactly p: probability ~2^-63
    for j in bad:
        v = (int(hi[j]) << 64 | int(lo[j])) % field.modulus
        lo[j], hi[j] = v & ((1 << 64) - 1), v >> 64


# ---------------------------------------------------------------------------------------- the PRF
class ColumnStreams:
    """One AES-128-CTR stream per base-OT seed; ``fill`` writes the next elements of every column."""

    def __init__(self, field: PrimeField, seeds: Sequence[bytes]) -> None:
        self.field = field
        self._encs: list[CipherContext] = []
        for seed in seeds:
            key = hashlib.sha256(b"trio-spdz/cope-prf/v2" + bytes(seed)).digest()[:16]
            self._encs.append(Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor())
        self._zeros = memoryview(b"")

    def __len__(self) -> int:
        return len(self._encs)

    def fill(self, buf: np.ndarray, m: int) -> np.ndarray:
        """The next m uniform elements of every stream, as a ``(W, k, m)`` view of ``buf`` (flat
        uint64 of at least ``W k m + 2`` words): column l comes from stream l, word by word."""
        f = self.field
        words, k = f.words, len(self._encs)
        nbytes = 8 * m
        if self._zeros.nbytes < nbytes:
            self._zeros = memoryview(bytes(nbytes))
        zeros = self._zeros[:nbytes]
        raw = memoryview(buf).cast("B")
        for w in range(words):  # rows in memory order: each write's 16 bytes of slack (which
            for col, enc in enumerate(self._encs):  # update_into insists on) land in a later row
                start = nbytes * (w * k + col)
                enc.update_into(zeros, raw[start : start + nbytes + 16])
        out = buf[: words * k * m].reshape(words, k, m)
        top = out[words - 1]
        mask = _top_mask(f)
        np.bitwise_and(top, mask, out=top)
        suspects = np.flatnonzero(np.any(top == mask, axis=1))  # a word equal to p's top word
        for col in suspects:
            self._redraw(out[:, col, :], int(col))
        return out

    def _redraw(self, col: np.ndarray, index: int) -> None:
        """Replace values equal to p by further draws from the same stream (probability ~2^-61)."""
        f = self.field
        enc = self._encs[index]
        while True:
            bad = [j for j, v in enumerate(f.to_ints(col)) if v == f.modulus]
            if not bad:
                return
            for j in bad:
                raw = enc.update(bytes(8 * f.words))
                v = int.from_bytes(raw, "little") & ((1 << f.bits) - 1)
                for w in range(f.words):
                    col[w, j] = (v >> (64 * w)) & ((1 << 64) - 1)


def alpha_bits(field: PrimeField, alpha: int) -> np.ndarray:
    return np.array([(alpha >> i) & 1 for i in range(field.bits)], dtype=bool)


class CopeSender:
    """The owner's side (P_i): holds both seeds of every column."""

    def __init__(self, field: PrimeField) -> None:
        self.field = field
        self._s0: ColumnStreams | None = None
        self._s1: ColumnStreams | None = None

    async def setup(self, ch: PairChannel, context: bytes) -> None:
        """Seeds from ``bits(p)`` base OTs (as their sender)."""
        self._seed(*(await base_ot_send(ch, self.field.bits, context)))

    async def setup_from(self, ot: OTExtensionSender, ch: PairChannel) -> None:
        """Seeds from ``bits(p)`` random OTs of a set-up OT extension in which this party is the
        sender and the key holder the receiver (``ch``: that extension's channel)."""
        self._seed(*(await ot.extend(ch, self.field.bits)))

    def _seed(self, k0: np.ndarray, k1: np.ndarray) -> None:
        self._s0 = ColumnStreams(self.field, [bytes(r) for r in k0])
        self._s1 = ColumnStreams(self.field, [bytes(r) for r in k1])

    async def extend(self, ch: PairChannel, x: np.ndarray) -> np.ndarray:
        """Send the corrections for ``x``; return ``t`` with ``q + t = alpha_j * x`` at the peer."""
        if self._s0 is None or self._s1 is None:
            raise RuntimeError("COPE sender used before setup")
        f = self.field
        k, m, words = f.bits, x.shape[1], f.words
        s0, s1 = self._s0, self._s1

        def work() -> tuple[np.ndarray, np.ndarray]:
            """u = t0 - t1 + x (word-major (W, k*m) on the wire) and t, chunk by chunk: the chunk
            buffers stay in cache and nothing of size k*m exists but u itself."""
            u = np.empty((words, k, m), dtype=U64)  # fresh: it is sent without a copy
            t = np.empty((words, m), dtype=U64)
            c = min(COPE_CHUNK, m)
            b0, b1 = (np.empty(words * k * c + 2, dtype=U64) for _ in range(2))
            d, xt, uc = (np.empty((words, k * c), dtype=U64) for _ in range(3))
            for c0 in range(0, m, c):
                n = min(c, m - c0)
                t0, t1 = s0.fill(b0, n), s1.fill(b1, n)
                flat = (words, k * n)
                dd, xx, uu = d[:, : k * n], xt[:, : k * n], uc[:, : k * n]
                xx.reshape(words, k, n)[...] = x[:, None, c0 : c0 + n]
                f.sub(t0.reshape(flat), t1.reshape(flat), out=dd)
                f.add(dd, xx, out=uu)
                u[:, :, c0 : c0 + n] = uu.reshape(words, k, n)
                t[:, c0 : c0 + n] = gadget_sum(f, n, [("field", t0)])
            return u, f.neg(t)

        u, t = await run_sync(work)
        await ch.send(f.to_wire(u.reshape(words, k * m)))
        return t


class CopeReceiver:
    """The key holder's side (P_j): holds one seed per column, chosen by the bits of ``alpha_j``."""

    def __init__(self, field: PrimeField) -> None:
        self.field = field
        self._s: ColumnStreams | None = None
        self._bits: np.ndarray | None = None

    async def setup(self, ch: PairChannel, alpha: int, context: bytes) -> None:
        """Seeds from ``bits(p)`` base OTs (as their receiver, choosing with the bits of ``alpha``)."""
        bits = alpha_bits(self.field, alpha)
        self._seed(await base_ot_recv(ch, bits, context), bits)

    async def setup_from(self, ot: OTExtensionReceiver, ch: PairChannel, alpha: int) -> None:
        """Seeds from ``bits(p)`` random OTs of a set-up OT extension in which this party is the
        receiver, choosing with the bits of ``alpha`` (``ch``: that extension's channel)."""
        bits = alpha_bits(self.field, alpha)
        self._seed(await ot.extend(ch, bits), bits)

    def _seed(self, keys: np.ndarray, bits: np.ndarray) -> None:
        self._s = ColumnStreams(self.field, [bytes(r) for r in keys])
        self._bits = bits

    async def extend(self, ch: PairChannel, m: int) -> np.ndarray:
        """Receive the corrections for ``m`` of the peer's values; return ``q``."""
        if self._s is None or self._bits is None:
            raise RuntimeError("COPE receiver used before setup")
        f = self.field
        k, words = f.bits, f.words
        peer = ch.peer
        raw = expect_bytes(await ch.recv(), peer, "COPE corrections", k * m * f.elem_bytes)
        try:
            u = f.from_bytes(raw, k * m).reshape(words, k, m)
        except FieldError as e:
            raise ProtocolError(f"party {peer} sent invalid COPE corrections: {e}", culprit=peer) from None
        stream = self._s
        col_bits = self._bits.reshape(k, 1)

        def work() -> np.ndarray:
            """q = sum_l 2^l (t_l + Delta_l u_l): one exact sum per chunk (same chunks as the sender's,
            so the streams are read in the same order)."""
            q = np.empty((words, m), dtype=U64)
            c = min(COPE_CHUNK, m)
            buf = np.empty(words * k * c + 2, dtype=U64)
            for c0 in range(0, m, c):
                n = min(c, m - c0)
                t = stream.fill(buf, n)
                q[:, c0 : c0 + n] = gadget_sum(
                    f, n, [("field", t), ("picked", u[:, :, c0 : c0 + n], col_bits)]
                )
            return q

        return await run_sync(work)
