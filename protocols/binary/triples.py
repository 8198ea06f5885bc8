"""AND triples: leaky ANDs from the bit-authentication OTs, checked, then bucketed to full security.

A triple is ``([[x]], [[y]], [[z]])`` with ``z = x AND y``. Per batch of ``count`` triples, with bucket
size ``B = bucket_size(count)`` and ``N = count * B`` leaky triples (Wang-Ranellucci-Katz, CCS 2017,
"Global-scale secure MPC", leaky AND and its bucketing; with the global key of Hazay-Scholl-Soria-
Vazquez, ASIACRYPT 2017):

1. **Authenticate** random x, y, r at every party (``auth.cot_batch``): ``3 N`` bits per owner plus
   the 128 mask bits. Each pair's correlated OTs on x stay at hand: receiver i holds
   ``M = K + x_i Delta_j``, sender j holds ``K``.
2. **Half-ANDs** (shares of ``x_i y_j`` for i != j) from those OTs, no new OT: j sends
   ``d = h(K) + h(K + Delta_j) + y_j``; i takes ``h(M) + x_i d = h(K) + x_i y_j``, j takes ``h(K)``.
   With the local ``x_i y_i``, party i's ``z_i`` sums to ``z = x y``.
3. **Leaky-AND check material**, in the same message: ``W = G(K) + G(K + Delta_j) + m_j[y]``
   (128 bits), so that i gets ``G(M) + x_i W = G(K) + x_i m_j[y]`` and j keeps ``G(K)``: shares of
   every cross term of ``x (XOR_j m_j[y]) = x y Delta``. Party i's sum ``S_i`` of them (and of
   ``x_i m_i[y]``) satisfies ``XOR_i S_i = x y Delta``.
4. **Authenticate z** through r, as WRK17 do (no second batch of OTs): every party broadcasts
   ``e_i = z_i + r_i``; with ``e = XOR_i e_i`` public, ``[[z]] = [[r]] + e``. e reveals nothing (r is
   uniform and secret); a party that broadcasts a wrong ``e_i`` has in effect a wrong z share, and one
   that tells different parties different ``e_i`` fails the broadcast digest.
5. **Check** (one ``BitChecker.check``): the consistency of the authentication of x, y, r, and the
   leaky-AND relation ``XOR_i sum_k chi_k (S_ik + m_i[z_k]) = sum_k chi_k (x_k y_k + z_k) Delta = 0``.
   A wrong ``z`` (a wrong ``e_i``, a wrong ``d``) leaves ``err Delta``, which nobody can cancel;
   a wrong ``W`` shifts a party's ``S`` by ``x_i`` times the change. So the check fails unless the
   cheat is multiplied by an honest ``x_i`` bit that happens to be 0: the adversary may *guess* bits
   of honest x shares, is caught with probability 1/2 per guess, and learns the bits it guessed
   right. That is the leak; y never leaks (d and W are masked by the hash of the unknown key).
6. **Bucket** (leakage only: every surviving leaky triple is correct): a coin-tossed permutation puts
   the N triples in ``count`` buckets of B; a bucket ``(x_r, y_r, z_r)`` becomes
   ``x = XOR_r x_r``, ``y = y_1``, ``z = XOR_r z_r + XOR_{r>1} d_r x_r`` with ``d_r = y_1 + y_r``
   opened (the y are never leaked, so d reveals nothing). ``x`` is secret unless the adversary
   guessed every x of the bucket. The openings are MAC-checked before the triples are returned.

H (h is the lowest bit of H, G all 128 bits) is the fixed-key-AES TCCR hash of ``ot.crhash`` with a
tweak never repeated under one Delta: the receiver's id (bits 56+), h or G (bit 55) and a running
count of the pair's hashed OTs. h and G use distinct tweaks: if h were a bit of G, the receiver could
combine d and W into a bit of ``m_j[y]`` against ``y_j``.

Why this and not Tinier's sacrifice (MP-SPDZ: passive triples, cut-and-choose, sacrifice in buckets,
then combine in buckets): in GF(2) a sacrifice passes when both triples carry the same error, so it
needs its own bucketing, and combining then needs a second one (B^2 leaky triples per output triple,
9 at 2^20). The MAC-based check makes each leaky triple correct on its own, so one bucketing against
leakage suffices (B of them), at the price of 128 bits of W per leaky triple and pair.

Per leaky triple and ordered pair: 3 correlated OTs (16 bytes each on the wire, receiver to sender),
16 bytes of W and a bit of d; per leaky triple and party a broadcast bit of e.

``bucket_size``: the adversary wins if some bucket holds only triples whose x it guessed right. If it
attacks t of the ``count * B`` triples it survives the check with probability 2^-t, and a uniformly
random bucketing puts all B of one bucket among the t with probability at most
``count * C(t, B) / C(count * B, B)`` (union bound over buckets). B is the smallest size with
``max_t 2^-t min(1, count C(t, B) / C(count B, B)) <= 2^-40``: 3 from 276,325 triples per batch,
4 from 3,044, 5 from 320, 40 for a single triple (``docs/bits.md`` has the table).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..concurrency import run_sync, task_group
from ..net import exchange, expect_bytes, expect_list
from ..ot.crhash import TCCRHash
from ..prg import PRG
from .auth import CotBatch, cot_batch, cot_channel, random_bits
from .bits import U64, AuthBits
from .check import linear, unpack_exact

if TYPE_CHECKING:
    from ..online import Session
    from .party import BinaryParty
    from .session import BitSession

STAT_SEC = 40
_TWEAK_G = 1 << 55
_RECEIVER_SHIFT = 56


def bucket_log2_failure(count: int, bucket: int) -> float:
    """log2 of the bound above on the adversary's success for ``count`` buckets of ``bucket``."""
    total = count * bucket

    def log2_comb(a: int, b: int) -> float:
        return (math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)) / math.log(2)

    worst = -math.inf
    for t in range(bucket, min(total, STAT_SEC + 1) + 1):
        placed = min(0.0, math.log2(count) + log2_comb(t, bucket) - log2_comb(total, bucket))
        worst = max(worst, -t + placed)
    return worst


def bucket_size(count: int, sec: int = STAT_SEC) -> int:
    """The smallest bucket size with failure probability at most 2^-sec for ``count`` triples."""
    if count <= 0:
        raise ValueError(f"bucket_size needs a positive count, got {count}")
    b = 2
    while bucket_log2_failure(count, b) > -sec:
        b += 1
    return b


def _tweaks(party: BinaryParty, receiver: int, sender: int, count: int) -> tuple[int, int]:
    """The h and G tweak starts for ``count`` hashed OTs of the pair; advances the pair's counter."""
    key = (receiver, sender)
    used = party.hashed.get(key, 0)
    if used + count >= _TWEAK_G:
        raise RuntimeError("this pair has hashed 2^55 OTs under one key: set up a new BinaryParty")
    party.hashed[key] = used + count
    base = (receiver << _RECEIVER_SHIFT) + used
    return base, base + _TWEAK_G


def _lsb(rows: np.ndarray) -> np.ndarray:
    return (rows[:, 0] & U64(1)).astype(np.uint8)


def sender_messages(
    keys: np.ndarray, delta: np.ndarray, y: np.ndarray, mac_y: np.ndarray, tweak_h: int, tweak_g: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sender j's side towards one receiver: ``(d, W, h(K), G(K))`` for the receiver's x bits."""
    hasher = TCCRHash()
    h0 = _lsb(hasher.hash_rows(tweak_h, keys))
    h1 = _lsb(hasher.hash_rows(tweak_h, keys, xor=delta))
    g0 = hasher.hash_rows(tweak_g, keys)
    w = hasher.hash_rows(tweak_g, keys, xor=delta)
    w ^= g0
    w ^= mac_y
    return h0 ^ h1 ^ y, w, h0, g0


def receiver_shares(
    macs: np.ndarray, x: np.ndarray, d: np.ndarray, w: np.ndarray, tweak_h: int, tweak_g: int
) -> tuple[np.ndarray, np.ndarray]:
    """Receiver i's shares of ``x_i y_j`` and ``x_i m_j[y]`` from its OT rows ``M`` and j's (d, W)."""
    hasher = TCCRHash()
    hz = _lsb(hasher.hash_rows(tweak_h, macs)) ^ (x & d)
    gs = hasher.hash_rows(tweak_g, macs)
    gs ^= np.where(x[:, None].astype(bool), w, U64(0))
    return hz, gs


def half_and(
    x: np.ndarray,
    y: np.ndarray,
    mac_y: np.ndarray,
    sender_parts: list[tuple[np.ndarray, np.ndarray]],
    receiver_parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """This party's ``z_i`` and ``S_i`` from its own terms and every pair's shares (h, G)."""
    z = x & y
    acc = np.where(x[:, None].astype(bool), mac_y, U64(0))
    for hz, gs in (*sender_parts, *receiver_parts):
        z ^= hz
        acc ^= gs
    return z, acc


async def leaky_triples(bs: BitSession, count: int) -> tuple[AuthBits, AuthBits, AuthBits]:
    """``count`` leaky triples (steps 1-4 above); the check (step 5) is queued on ``bs.checker`` and
    must run before anything derived from them is used."""
    s: Session = bs.s
    party = bs.party
    me, n = s.party, s.n
    delta = party.ctx.delta
    mine = random_bits(3 * count)
    xyr = await cot_batch(s, party, mine, [3 * count] * n)
    x, y, r = mine[:count], mine[count : 2 * count], mine[2 * count :]
    mac_x, mac_y = _combined(xyr, n, 0, count), _combined(xyr, n, count, 2 * count)
    mac_r = _combined(xyr, n, 2 * count, 3 * count)
    sender_parts: list[tuple[np.ndarray, np.ndarray]] = []
    receiver_parts: list[tuple[np.ndarray, np.ndarray]] = []

    async def as_sender(j: int) -> None:  # j's x bits, our Delta, our y
        ch = s.pair_channel(j, cot_channel(j, me))
        th, tg = _tweaks(party, j, me, count)
        d, w, h0, g0 = await run_sync(sender_messages, xyr.keys[j][:count], delta, y, mac_y, th, tg)
        await ch.send([np.packbits(d, bitorder="little").tobytes(), memoryview(w).cast("B")])
        sender_parts.append((h0, g0))

    async def as_receiver(j: int) -> None:  # our x bits, j's Delta and y
        ch = s.pair_channel(j, cot_channel(me, j))
        th, tg = _tweaks(party, me, j, count)
        msg = expect_list(await ch.recv(), j, "half-AND message", 2)
        d = unpack_exact(msg[0], j, count, "half-AND corrections")
        raw = expect_bytes(msg[1], j, "leaky-AND check rows", 16 * count)
        w = np.frombuffer(raw, dtype=U64).reshape(count, 2)
        receiver_parts.append(await run_sync(receiver_shares, xyr.macs[j][:count], x, d, w, th, tg))

    async with task_group() as nursery:
        for j in range(n):
            if j != me:
                nursery.start_soon(as_sender, j)
                nursery.start_soon(as_receiver, j)
    z, acc = half_and(x, y, mac_y, sender_parts, receiver_parts)
    # [[z]] = [[r]] + e with e = XOR_i (z_i + r_i) public: e = z + r is uniform, as r is
    step = s.next_step()
    msgs = await exchange(s.net, step, np.packbits(z ^ r, bitorder="little").tobytes())
    e = np.zeros(count, dtype=np.uint8)
    for j, msg in enumerate(msgs):
        e ^= unpack_exact(msg, j, count, "z + r share of a leaky triple")
        bs.checker.record_broadcast(step, j, bytes(msg))
    ctx = party.ctx
    zz = AuthBits(ctx, r.copy(), mac_r).xor_public(e)
    for owner in range(n):
        bs.checker.add_auth(xyr.pending(owner))
    relation = acc ^ zz.macs
    bs.checker.add_zero(lambda seed: linear(seed, relation))
    return AuthBits(ctx, x.copy(), mac_x), AuthBits(ctx, y.copy(), mac_y), zz


def _combined(batch: CotBatch, n: int, lo: int, hi: int) -> np.ndarray:
    """This party's MAC share of the XOR of every owner's bits ``[lo, hi)`` of a batch."""
    acc = batch.component(0)[lo:hi] ^ batch.component(1)[lo:hi]
    for owner in range(2, n):
        acc ^= batch.component(owner)[lo:hi]
    return acc


def permutation(seed: bytes, size: int) -> np.ndarray:
    """A uniform permutation from a tossed seed, the same at every party (sorting random 64-bit keys;
    ties, at most size^2 / 2^65, are broken by position, identically everywhere)."""
    keys = PRG(seed).random_words(size)
    return np.argsort(keys, kind="stable")


async def combine(
    bs: BitSession, xp: AuthBits, yp: AuthBits, zp: AuthBits, count: int, bucket: int
) -> tuple[AuthBits, AuthBits, AuthBits]:
    """Step 6: ``count`` triples from ``count * bucket`` checked leaky ones, already in the order of the
    coin-tossed ``permutation`` (openings left unchecked). Bucket k holds the leaky triples at
    positions ``k * bucket .. k * bucket + bucket - 1``, so member r of every bucket is the strided
    slice ``r::bucket``."""
    xs = [xp[r::bucket] for r in range(bucket)]
    ys = [yp[r::bucket] for r in range(bucket)]
    zs = [zp[r::bucket] for r in range(bucket)]
    if bucket == 1:
        return xs[0], ys[0], zs[0]
    ds = await bs.checker.open([ys[0] ^ ys[r] for r in range(1, bucket)])
    xo, zo = xs[0], zs[0]
    for r in range(1, bucket):
        xo = xo ^ xs[r]
        zo = zo ^ zs[r] ^ xs[r].and_public(ds[r - 1])
    return xo, ys[0], zo


def check_count(count: int) -> None:
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
        raise TypeError(f"the number of triples must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"the number of triples must not be negative, got {count}")
