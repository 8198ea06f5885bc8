"""MASCOT triples: Gilboa multiplication over OT, combine, authenticate, sacrifice.

Per batch of N triples (MASCOT.md s. 5; Keller-Orsini-Scholl 2016, Pi_Triple):

1. **Multiply.** Every P_i samples ``a^i`` (tau x N) and ``b^i`` (N). For each ordered pair (i, j),
   Gilboa's protocol gives additive shares of ``a^i * b^j``: P_i is the OT receiver with the bits of
   ``a^i`` as choices, P_j the sender; for bit l P_j sends ``d_l = v0_l - v1_l + b``, P_i computes
   ``v0_l + a_l * b`` from its OT output, and the shares are ``sum_l 2^l (v0_l + a_l b)`` (P_i) and
   ``-sum_l 2^l v0_l`` (P_j). Then ``c^i = a^i b^i + (all cross-term shares)``, so ``c = a * b``.
2. **Combine.** Coin-tossed ``r, r^`` (tau per triple): ``a = sum r_k a_k``, ``c = sum r_k c_k`` and
   likewise ``a^, c^`` with ``r^``. A cheater's selective-failure attack on the OTs can leak a few
   bits of the ``a_k``; the random combination leaves ``a`` uniform anyway (tau = 3, as MP-SPDZ).
3. **Authenticate** every party's shares of ``a, b, c, a^, c^`` (``auth.py``).
4. **Sacrifice.** Coin-tossed ``s``: open ``rho = s [[a]] - [[a^]]``, then open
   ``s [[c]] - [[c^]] - rho [[b]]`` and require zero, then MAC-check every opened value. A wrong
   share of ``c`` (or a wrong OT message in step 1) survives only with probability 1/p. Only then
   are ``([[a]], [[b]], [[c]])`` handed out.

Bit layout of the OTs of one pair: the ``tau N`` elements of ``a^i`` (flattened copy-major) are cut
into chunks of at most ``ot_chunk(n) / bits(p)`` elements (``gilboa_chunks``), one OT extension and
one correction message each; within a chunk of ``m`` elements OT ``l * m + e`` carries bit ``l`` of
its element ``e``, so each bit position is one contiguous block.

Memory: a batch holds its chunks' OT strings and corrections (a few ``ot_chunk(n)`` x 16-byte
matrices per peer and role, ``OT_CHUNK`` x 16 bytes each over all peers) plus ``O(N)`` field
vectors, whatever ``N`` is; ``protocols.mascot.memory`` estimates a batch's working set, which the
offline service keeps under its byte bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..concurrency import run_sync, task_group
from ..errors import AbortError, ProtocolError
from ..field import FieldError, PrimeField
from ..net import PairChannel, expect_bytes
from ..ot.extension import OTExtensionReceiver, OTExtensionSender
from ..prg import PRG
from ..shares import SharedArray
from .auth import authenticate
from .cope import CopeReceiver, CopeSender, gadget_sum

if TYPE_CHECKING:
    from ..online import Session

TAU = 3
GILBOA_BLOCK = 1 << 15  # elements per block of columns in the sender's corrections
# OTs in one extension of Gilboa's products, over all of a party's peers at once: each peer's
# extensions take OT_CHUNK / (n - 1) OTs at a time (at least MIN_OT_CHUNK), so a batch's OT material
# (2^20 OTs: 16 MB of 128-bit strings per matrix) is bounded whatever its size and however many peers.
# (Smaller chunks cost CPU: each chunk is an extension's fixed work and several thread hand-offs;
# at n = 3, 2^19 made a batch of 2,048 triples ~8% slower over TLS, one process per party.)
# Every party must use the same values (they fix the chunks).
OT_CHUNK = 1 << 20
MIN_OT_CHUNK = 1 << 14
U64 = np.uint64


def ot_channel(receiver: int, sender: int) -> int:
    """Channel id of the OT extension where ``receiver`` chooses and ``sender`` sends."""
    return 0x2000 + (receiver << 6) + sender


def ot_to_field(field: PrimeField, v: np.ndarray) -> np.ndarray:
    """128-bit OT strings (uint64 (m, 2)) to field elements (W, m): the low ``bits`` bits, p -> 0.

    The strings are pseudo-random, so the result is uniform but for the one value p (2^-61 at most).
    The test for p looks at the top word alone first: it almost never matches, so the full test and
    the fix-up run almost never.
    """
    top = U64((1 << (field.bits - 64 * (field.words - 1))) - 1)
    out = np.empty((field.words, v.shape[0]), dtype=U64)
    if field.words == 2:
        out[0] = v[:, 0]
    np.bitwise_and(v[:, field.words - 1], top, out=out[-1])
    if np.any(out[-1] == top):
        full = np.all(out == np.array([[U64((1 << 64) - 1)]] * (field.words - 1) + [[top]]), axis=0)
        out[:, full] = 0
    return out


def element_bits(field: PrimeField, a: np.ndarray) -> np.ndarray:
    """Bits of each element of ``a`` (W, m) as bool (bits, m): row l is bit l of every element."""
    m = a.shape[1]
    words = np.ascontiguousarray(a.T)  # (m, W): element-major little-endian words
    bits = np.unpackbits(words.view(np.uint8).reshape(m, 8 * field.words), axis=1, bitorder="little")
    return np.ascontiguousarray(bits[:, : field.bits].T).astype(bool)


def ot_chunk(n: int) -> int:
    """The most OTs one Gilboa extension with one peer takes at ``n`` parties."""
    return max(MIN_OT_CHUNK, OT_CHUNK // max(1, n - 1))


def gilboa_chunks(field: PrimeField, m: int, n: int) -> list[tuple[int, int]]:
    """The element ranges ``[e0, e1)`` of one pair's Gilboa products at ``n`` parties, one OT extension
    each: at most ``ot_chunk(n)`` OTs (``bits(p)`` per element), in equal parts. Both ends compute the
    same ranges from public numbers, so they extend and exchange corrections in lockstep."""
    per = max(1, ot_chunk(n) // field.bits)
    parts = -(-m // per)
    size = -(-m // parts)
    return [(e0, min(m, e0 + size)) for e0 in range(0, m, size)]


async def gilboa_receiver(
    field: PrimeField, ot: OTExtensionReceiver, ch: PairChannel, a: np.ndarray, out: np.ndarray, n: int
) -> None:
    """P_i's side of ``a * b`` (b is the peer's): ADDS its additive share into ``out`` (shape of ``a``).

    The share ``sum_l 2^l (v_l + a_l d_l)`` is one exact gadget sum over the raw OT strings (cut to
    ``bits(p)`` bits: congruent to ``ot_to_field``'s values mod p) and the picked corrections. It is
    made a chunk of elements at a time (``gilboa_chunks``): one OT extension and one correction
    message per chunk, so the OT strings and corrections held at once are bounded by ``ot_chunk(n)``
    (``n``: the number of parties) whatever the batch size.
    """
    f = field
    k = f.bits
    for e0, e1 in gilboa_chunks(f, a.shape[1], n):
        m = e1 - e0
        bits = element_bits(f, a[:, e0:e1])  # (k, m)
        vc = await ot.extend(ch, bits.reshape(-1))
        raw = expect_bytes(await ch.recv(), ch.peer, "Gilboa corrections", k * m * f.elem_bytes)
        try:
            d = f.from_bytes(raw, k * m)
        except FieldError as e:
            raise ProtocolError(
                f"party {ch.peer} sent invalid Gilboa corrections: {e}", culprit=ch.peer
            ) from None
        d3 = d.reshape(f.words, k, m)
        share = await run_sync(gadget_sum, f, m, [("rows", vc), ("picked", d3, bits)])
        del vc, raw, d, d3, bits  # this chunk's OT material goes before the next chunk's arrives
        out[:, e0:e1] = f.add(out[:, e0:e1], share)


def gilboa_corrections(field: PrimeField, v0: np.ndarray, v1: np.ndarray, b_rep: np.ndarray) -> np.ndarray:
    """The sender's corrections ``d = v0 - v1 + b`` as field elements, ``(W, k, m)`` for ``b_rep``
    ``(W, m)``, a block of columns at a time (cache-sized temporaries)."""
    f = field
    k, words, m = f.bits, f.words, b_rep.shape[1]
    d = np.empty((words, k, m), dtype=U64)  # fresh: it is sent without a copy
    r0, r1 = v0.reshape(k, m, 2), v1.reshape(k, m, 2)
    cols = max(1, GILBOA_BLOCK // m)
    bt = np.empty((words, cols, m), dtype=U64)
    bt[...] = b_rep[:, None, :]
    for l0 in range(0, k, cols):
        nl = min(cols, k - l0)
        flat = (words, nl * m)
        f0 = ot_to_field(f, r0[l0 : l0 + nl].reshape(-1, 2))
        f1 = ot_to_field(f, r1[l0 : l0 + nl].reshape(-1, 2))
        diff = f.sub(f0, f1)
        f.add(diff, bt[:, :nl].reshape(flat), out=d[:, l0 : l0 + nl].reshape(flat))
    return d


async def gilboa_sender(
    field: PrimeField, ot: OTExtensionSender, ch: PairChannel, b: np.ndarray, m: int, out: np.ndarray, n: int
) -> None:
    """P_j's side of ``a * b`` for the peer's ``m`` elements of ``a``, element ``e`` against ``b[e %
    len(b)]`` (its ``b`` repeated to the length of ``a``): ADDS its share into ``out`` (``(W, m)``), a
    chunk of elements at a time (``gilboa_chunks``, the receiver's ranges)."""
    f = field
    k, words, count = f.bits, f.words, b.shape[1]
    for e0, e1 in gilboa_chunks(f, m, n):
        mc = e1 - e0
        v0, v1 = await ot.extend(ch, k * mc)
        b_rep = np.take(b, np.arange(e0, e1) % count, axis=1)

        d = await run_sync(gilboa_corrections, f, v0, v1, b_rep)
        del v1, b_rep
        await ch.send(f.to_wire(d.reshape(words, k * mc)))
        del d
        share = await run_sync(gadget_sum, f, mc, [("rows", v0)])
        del v0
        out[:, e0:e1] = f.sub(out[:, e0:e1], share)


async def generate_triples(
    s: Session,
    cope_send: dict[int, CopeSender],
    cope_recv: dict[int, CopeReceiver],
    ot_send: dict[int, OTExtensionSender],
    ot_recv: dict[int, OTExtensionReceiver],
    count: int,
) -> tuple[SharedArray, SharedArray, SharedArray]:
    """``count`` checked triples ``([[a]], [[b]], [[c]])``; raises ``AbortError`` if any check fails.

    ``count == 0`` returns empty arrays without any communication (every party sees the same count);
    a negative count is a ``ValueError``, raised before anything is sent.
    """
    f = s.field
    if count < 0:
        raise ValueError(f"the number of triples must not be negative, got {count}")
    if count == 0:
        empty = SharedArray(s.ctx, f.zeros(0), f.zeros(0))
        return empty, empty, empty
    me, n = s.party, s.n
    prg = PRG()
    a_mine = f.random(TAU * count, prg)  # copy-major: element k * count + t is copy k of triple t
    b_mine = f.random(count, prg)
    c_mine = np.empty_like(a_mine)
    for k in range(TAU):
        sl = slice(k * count, (k + 1) * count)
        f.mul_into(a_mine[:, sl], b_mine, c_mine[:, sl])

    # every cross-term share is added into c_mine as its chunks arrive: no per-peer copies
    async with task_group() as nursery:  # both roles at once, or two receivers wait on each other
        for j in range(n):
            if j != me:
                ch_r, ch_s = s.pair_channel(j, ot_channel(me, j)), s.pair_channel(j, ot_channel(j, me))
                nursery.start_soon(gilboa_receiver, f, ot_recv[j], ch_r, a_mine, c_mine, n)
                nursery.start_soon(gilboa_sender, f, ot_send[j], ch_s, b_mine, TAU * count, c_mine, n)

    # combine, one copy at a time (temporaries of ``count`` elements)
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("mascot-combine", steps[0]))
    cprg = PRG(seed)
    r, r_hat = f.random(TAU * count, cprg), f.random(TAU * count, cprg)
    mine = np.empty((f.words, 5 * count), dtype=U64)  # a, b, c, a^, c^
    mine[:, count : 2 * count] = b_mine
    for coeff, (ia, ic) in ((r, (0, 2)), (r_hat, (3, 4))):
        acc_a, acc_c = mine[:, ia * count : (ia + 1) * count], mine[:, ic * count : (ic + 1) * count]
        tmp = np.empty((f.words, count), dtype=U64)
        for k in range(TAU):
            sl = slice(k * count, (k + 1) * count)
            if k == 0:
                f.mul_into(coeff[:, sl], a_mine[:, sl], acc_a)
                f.mul_into(coeff[:, sl], c_mine[:, sl], acc_c)
                continue
            acc_a[...] = f.add(acc_a, f.mul_into(coeff[:, sl], a_mine[:, sl], tmp))
            acc_c[...] = f.add(acc_c, f.mul_into(coeff[:, sl], c_mine[:, sl], tmp))
    del a_mine, c_mine, r, r_hat

    # authenticate every party's five vectors
    owned = await authenticate(s, cope_send, cope_recv, mine, [5 * count] * n)
    del mine
    total = owned[0]
    assert total is not None
    for sh_i in owned[1:]:
        assert sh_i is not None
        total = total + sh_i
    del owned, sh_i
    a, b, c, a_hat, c_hat = total.split([count] * 5)

    # sacrifice
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("mascot-sacrifice", steps[0]))
    t = f.random(count, PRG(seed))
    rho_sh = a.mul_public_field(t) - a_hat
    (rho,) = await s.open_unchecked([rho_sh])
    zero_sh = c.mul_public_field(t) - c_hat - b.mul_public_field(rho)
    (zero,) = await s.open_unchecked([zero_sh])
    await s.mac_check()
    if np.any(zero):
        raise AbortError("MASCOT sacrifice failed: some triple is not a product (a party deviated)")
    # compact copies: views would keep a^ and c^ (two fifths of ``total``) alive in the pool
    a, b, c = (SharedArray(s.ctx, x.value.copy(), x.mac.copy()) for x in (a, b, c))
    return a, b, c
