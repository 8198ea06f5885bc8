"""SoftSpokenOT (Roy, CRYPTO 2022): OT extension from small-field VOLE, with KOS's correlation check.

Like KOS (``kos.py``) this turns 128 base OTs per ordered pair into any number of random 1-out-of-2 OTs
of 128-bit strings, with symmetric crypto only, and ends in the same correlation (q_j = t_j ^ x_j Delta)
hashed the same way. The difference is how that correlation is made: KOS sends one 128-bit row of
corrections per OT (u_l for each of the 128 columns); SoftSpokenOT groups the columns into blocks of k,
turns each block's k base OTs into one (2^k - 1)-out-of-2^k OT with a GGM tree, and from that gets k
columns for the price of one correction, so an OT costs 128/k bits on the wire instead of 128. The
price is local work: 2^k PRG streams per block instead of 2 (the receiver expands 2^k * 128/k streams,
the sender (2^k - 1) * 128/k).

Roles, as in KOS: the extension **receiver** (choice bits x) is the base-OT *sender* and the GGM-tree
sender (it knows every leaf); the extension **sender** is the base-OT *receiver* with random choice
bits, learns every leaf but one per tree, and the missing leaves spell Delta.

Parameters. ``k`` (1..8, default ``DEFAULT_K`` = 2): the 128 columns split into ``128 // k`` blocks of
k columns, plus one block of ``128 % k`` columns when k does not divide 128 (k = 3: 42 blocks of 3 and
one of 2). Block b has depth d_b and owns base OTs / columns ``off_b .. off_b + d_b - 1``. k = 1 is
IKNP/KOS itself (trees of one level, two PRG streams per column), which the tests use as a cross-check.
Both ends must use the same k (a different k changes every message length: a ``ProtocolError``).

Choosing k (``DEFAULT_K`` = 2). Bytes per OT fall as 128/k bits, local work grows as 2^k/k. Measured
here (2 shared, noisy cores; both parties in one process; 2^18 OTs per extend; min over 15 extends of
both parties' compute, ms): KOS 24-25, k = 2 22-30, k = 4 39-44, k = 8 240-350; ``ot_bench.py``
rates (3 runs, memory transport): KOS 4.3-6.7 M/s at 16 bytes/OT, k = 2 3.7-7.1 M/s at 8, k = 4
5.5-8.6 M/s at 4 (noise), k = 8 1.2-1.5 M/s at 2; over TLS on loopback KOS ~5.3 M/s, k = 2 ~5.1 M/s,
k = 4 ~4.2 M/s. So k = 2 costs what KOS costs and halves the traffic: the default, as in MP-SPDZ. k = 4
pays ~60 ns more compute per OT (both parties, as measured here) to save 4 more bytes, a gain only
on links slower than ~0.5 Gbit/s;
k = 8 (4096 AES streams per side) only below ~20 Mbit/s.

Set-up (once per ordered pair, ``setup``):

1. 128 Chou-Orlandi base OTs (``base.py``): the receiver sends, getting key pairs (k0_l, k1_l); the
   sender picks random choice bits c_l and gets k_{c_l}.
2. For each block b, a GGM tree of depth d = d_b whose leaves are indexed by x in [0, 2^d), the bit
   taken at level i (0 = top) being bit d-1-i of x. Level 0 is the two keys of base OT off_b (no root,
   so no correction at that level). At level i >= 1 every node n has children G(n) = (left, right)
   (``G`` = BLAKE2b, 32 bytes out), and the receiver sends the two level sums, each masked with a key
   of base OT off_b + i: (xor of left children) ^ k0, (xor of right children) ^ k1. The sender, which
   knows every level-(i-1) node but the one on the punctured path, unmasks the sum of side c_{off_b+i}
   and so recovers the sibling of the path at level i; after d levels it knows every leaf except
   ``Delta_b = sum_i (1 - c_{off_b+i}) 2^(d-1-i)``. Delta's column off_b + i is bit i of Delta_b, and
   Delta is uniform because the c_l are.
3. PPRF consistency check. Each leaf s gives ``(gamma_s, seed_s) = H(s)`` (BLAKE2b: 32 + 16 bytes). The
   receiver sends, per tree, the xor of its 2^d gammas, and one SHA-256 digest of all gammas in order
   (bound to the session, channel and roles). The sender computes the gammas of its leaves, recovers the
   missing one from the xor, and compares digests (``AbortError`` if they differ). Without it a
   malicious receiver could send level sums that are inconsistent, so that the leaves the sender ends up
   with depend on where the tree is punctured, i.e. on Delta; the later checks would then leak Delta
   bits through whether they pass. With it the sender's leaves are those of one set the receiver
   committed to (in the random-oracle model), whatever Delta is. The PRG seeds are ``seed_s``, which
   gamma reveals nothing about. Set-up traffic besides the base OTs: 32 (128 - blocks) + 32 blocks + 32
   bytes, about 4 KiB.

One ``extend`` of m OTs, over m' = m + 128 + 40 rows rounded up to a multiple of 64 (the extra choice
bits are random and the extra rows are dropped, exactly as in KOS):

1. receiver: ``r_{b,x}`` = the next m' bits of AES-128-CTR keyed by ``seed_{b,x}`` (one running stream
   per leaf, so every extend reads fresh output); per block ``u_b = xor_x r_{b,x}`` and, for each bit i,
   ``v_{b,i} = xor of r_{b,x} over the x with bit i set``. The columns v are its matrix t (column
   off_b + i = v_{b,i}); it sends the corrections ``c_b = u_b ^ x`` (128/k rows of m' bits) and a
   commitment to its half of the check seed.
2. sender: the same with its unknown stream r_{b,Delta_b} taken as zero, which gives
   ``u~_b = u_b ^ r_{b,Delta_b}`` and ``v~_{b,i} = v_{b,i} ^ Delta_{b,i} r_{b,Delta_b}``; then column
   ``q_{b,i} = v~_{b,i} ^ Delta_{b,i} (u~_b ^ c_b) = v_{b,i} ^ Delta_{b,i} x`` -- the r term cancels. Row
   by row (``bitmatrix.transpose_128``) that is ``q_j = t_j ^ x_j Delta``, KOS's correlation. It sends
   its half of the check seed in the clear.
3. receiver opens its half; with chi from the joint seed (``gf128.PolyHash``, GHASH) it sends
   ``x~ = sum x_j chi_j`` and ``t~ = sum t_j chi_j``; the sender accepts iff
   ``sum q_j chi_j = t~ + x~ Delta`` in GF(2^128), else ``AbortError`` naming the receiver.
4. outputs: sender ``(H(j, q_j), H(j, q_j ^ Delta))``, receiver ``H(j, t_j)``, H the fixed-key-AES TCCR
   hash of ``crhash.py`` and j the global index of the OT on this endpoint (never repeats).

The xor sums of step 1 take about 2 * 2^k row operations per block (halve the leaf index space one bit at
a time: the top half's xor is that bit's v, the halves' xor is the next level's input), vectorised over
all blocks of a depth and over chunks of about ``CHUNK_BYTES`` of streams (bounded memory for any m).
All heavy work runs in ``run_sync`` worker threads.

Security. Computational 128 bits: Delta has 128 bits; the base OTs, AES-CTR streams, BLAKE2b tree and
the TCCR hash are 128-bit primitives. Statistical 40 bits for the check, as in KOS (the 40 extra rows
of m'). Soundness: a receiver whose effective choice vectors ``y_b = u_b ^ c_b`` differ between blocks
adds ``sum_b eps_b * Delta^(b)`` to the sender's hash (Delta^(b): Delta restricted to block b's
columns; eps_b: the chi-combination of block b's deviation from the x it claims in x~), which it must
predict to fix up t~. A nonzero eps_b makes ``Delta^(b) -> eps_b Delta^(b)`` injective, so one
deviating block of depth d passes with probability 2^-d, and in general the receiver passes only with
the probability of guessing the Delta bits it thereby learns -- KOS's selective-failure trade-off. The
argument is KOS's: its correlation is exactly q_j = t_j ^ x_j Delta with a uniform Delta, and the
deviations possible here (constant over each block's columns) are a subset of the per-column ones
KOS's check handles. The 128 + 40 padding rows hide x and t from x~ and t~ as in KOS; the coin-tossed
seed (the receiver commits before the sender's half, which comes after the corrections) stops either
side choosing chi. The PPRF check leaks at most a guess of the same kind (a receiver that cheats in a
tree passes only for the Delta_b it bet on), before any output exists. The GHASH polynomial hash adds
<= 2^-114 per 2^14-row chunk, as noted in ``kos.py``.

**Deviations from the paper (and libOTe), with reasons:**

* Consistency check: KOS's GF(2^128) check (coin-tossed seed, GHASH polynomial hash) instead of the
  paper's subspace-VOLE check (in libOTe: a GF(2^64) polynomial hash per VOLE instance compressed by
  a random GF(2^k) matrix to ~40 bits, challenge chosen by the verifier, 64 sacrificial OTs). With the
  repetition code the subspace VOLE is exactly KOS's correlation with a uniform Delta, so KOS's check
  and its argument apply unchanged (secretflow/yacl's SoftSpokenOT checks the same KOS way), and the
  check code is the tested, GHASH-fast one ``kos.py`` uses. Cost: 104 more padding rows per extend
  than libOTe's 64 (832 bytes at k = 2), nothing per OT.
* Output hash: the fixed-key TCCR hash of Guo-Katz-Wang-Yu (as KOS here) instead of libOTe's
  randomised TCR hash keyed afresh per run by the sender; one hash for both extensions, secure in the
  ideal-permutation model, which the rest of the OT code already assumes.
* PRG: AES-128-CTR keyed by each leaf seed, one running stream per leaf (as KOS's seeds), instead of
  libOTe's fixed-key AES of seed ^ block index: a standard PRG, no multi-instance argument needed.
* Chosen choice bits: the interface takes the receiver's choices, so every block gets a correction
  (128/k bits per OT); the paper's random-choice variant sends one block less and derandomises with
  one more row, the same total.
* The GGM tree's level 0 is the base-OT key pair itself (no root and no level-0 correction), and the
  PPRF consistency check follows libOTe's implementation (a hash of per-leaf check values); the tree
  PRG and leaf hash are BLAKE2b, the set-up being far too small for speed to matter.

Output format: 128-bit strings as ``uint64`` arrays of shape ``(m, 2)`` (two little-endian words per
row, low word first), as every extension in ``extension.py``. Choice bits: bool (or 0/1) arrays.

Both endpoints are plain objects with ``setup`` (once) and ``extend`` (repeatable); they are not safe
for concurrent extends on the same object, and the two ends' calls must match one for one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from ..commitments import DIGEST_BYTES, NONCE_BYTES, commit, context_bytes, verify
from ..concurrency import run_sync
from ..errors import AbortError, CommitmentError
from ..net import PairChannel, expect_bytes, expect_list
from .base import base_ot_recv, base_ot_send
from .bitmatrix import pack_bits, transpose_128, unpack_bits
from .crhash import TCCRHash
from .gf128 import BLOCK, PolyHash, gcm_mul, xor_bytes

__all__ = [
    "DEFAULT_K",
    "MAX_K",
    "Layout",
    "SoftSpokenReceiver",
    "SoftSpokenSender",
    "Timings",
    "padded_rows",
]

KAPPA = 128
STAT_SEC = 40
DEFAULT_K = 2
MAX_K = 8
SEED_SHARE_BYTES = 32
NODE_BYTES = 16
GAMMA_BYTES = 32
# leaf streams are generated and reduced in chunks of CHUNK_BYTES (measured: k <= 4 gains little above
# 4 MiB) but of at least MIN_CHUNK_WORDS per stream (k = 8 has 4096 streams: shorter chunks are all
# per-call overhead)
CHUNK_BYTES = 1 << 23
MIN_CHUNK_WORDS = 512

_GGM_PERSON = b"trio-spdz/ggm"
_LEAF_PERSON = b"trio-spdz/leaf"
_PPRF_DOMAIN = b"trio-spdz/softspoken/pprf/v1"
_CHI_DOMAIN = b"trio-spdz/softspoken/chi/v1"


def padded_rows(m: int) -> int:
    """m' for m OTs: m + 128 + 40 rows, rounded up to a whole number of 64-bit words per column."""
    return -(-(m + KAPPA + STAT_SEC) // 64) * 64


@dataclass
class Timings:
    """Seconds spent per phase, summed over the extends of one endpoint (for the benchmark).

    ``prg``: the leaf streams; ``reduce``: the xor sums into u, v and the corrections; the rest as in
    KOS's ``Timings``.
    """

    prg: float = 0.0
    reduce: float = 0.0
    transpose: float = 0.0
    check: float = 0.0
    hash: float = 0.0
    other: float = 0.0
    calls: int = 0


@dataclass(frozen=True)
class _Group:
    """A run of blocks of equal depth: blocks block0.., columns col0.., leaf rows leaf0.."""

    blocks: int
    depth: int
    block0: int
    col0: int
    leaf0: int


class Layout:
    """How the 128 columns (= base OTs) split into blocks of ``k`` for one k, and where the leaves go.

    Block b has depth ``depths[b]``, owns columns ``col0[b] ..`` and leaf rows ``leaf0[b] ..`` (2^depth
    of them, in leaf-index order) of the stream matrix.
    """

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"SoftSpokenOT's k must be an integer from 1 to {MAX_K}, got {k!r}")
        self.k = k
        depths = [k] * (KAPPA // k) + ([KAPPA % k] if KAPPA % k else [])
        self.depths: tuple[int, ...] = tuple(depths)
        self.blocks = len(depths)
        col0: list[int] = []
        leaf0: list[int] = []
        col = leaf = 0
        for d in depths:
            col0.append(col)
            leaf0.append(leaf)
            col += d
            leaf += 1 << d
        self.col0 = tuple(col0)
        self.leaf0 = tuple(leaf0)
        self.leaves = leaf
        groups: list[_Group] = []
        b = 0
        while b < self.blocks:
            e = b
            while e < self.blocks and depths[e] == depths[b]:
                e += 1
            groups.append(_Group(e - b, depths[b], b, col0[b], leaf0[b]))
            b = e
        self.groups = tuple(groups)
        self.block_of_col = np.repeat(np.arange(self.blocks), depths)
        # set-up message sizes: two masked level sums per level below the top, one gamma sum per tree
        self.sums_bytes = 2 * NODE_BYTES * (KAPPA - self.blocks)
        self.gamma_sums_bytes = GAMMA_BYTES * self.blocks

    def sum_offset(self, b: int, level: int, side: int) -> int:
        """Where block b's masked level-``level`` sum of side ``side`` sits in the set-up message."""
        return 2 * NODE_BYTES * (self.col0[b] - b + level - 1) + NODE_BYTES * side

    def chunk_words(self, width: int) -> int:
        """Words per column per chunk: ``CHUNK_BYTES`` of leaf streams, at least ``MIN_CHUNK_WORDS``."""
        return min(width, max(MIN_CHUNK_WORDS, CHUNK_BYTES // (8 * self.leaves)))


# ---------------------------------------------------------------------------------------- GGM trees
def _int(b: bytes | np.ndarray) -> int:
    return int.from_bytes(bytes(b), "little")


def _xor_all(items: Iterable[bytes]) -> int:
    acc = 0
    for it in items:
        acc ^= int.from_bytes(it, "little")
    return acc


def _children(node: bytes) -> tuple[bytes, bytes]:
    """The GGM length-doubling PRG: (left, right) children of a 16-byte node."""
    d = hashlib.blake2b(node, digest_size=2 * NODE_BYTES, person=_GGM_PERSON).digest()
    return d[:NODE_BYTES], d[NODE_BYTES:]


def _leaf_outputs(leaf: bytes) -> tuple[bytes, bytes]:
    """``(gamma, seed)`` of a leaf: the PPRF check value and the PRG key, independent halves of a hash."""
    d = hashlib.blake2b(leaf, digest_size=GAMMA_BYTES + NODE_BYTES, person=_LEAF_PERSON).digest()
    return d[:GAMMA_BYTES], d[GAMMA_BYTES:]


def _pprf_digest(ctx: bytes, gammas: Iterable[bytes]) -> bytes:
    h = hashlib.sha256(_PPRF_DOMAIN)
    h.update(len(ctx).to_bytes(4, "big"))
    h.update(ctx)
    for g in gammas:
        h.update(g)
    return h.digest()


def plant_trees(
    layout: Layout, k0: np.ndarray, k1: np.ndarray, ctx: bytes
) -> tuple[list[bytes], list[bytes]]:
    """The receiver's side of the set-up: ``([sums, gamma_sums, digest], seeds)``.

    ``k0``, ``k1``: the base-OT key pairs (``uint8`` (128, 16)); ``seeds``: every leaf's PRG key, in
    stream-matrix row order.
    """
    sums = bytearray()
    gamma_sums = bytearray()
    gammas: list[bytes] = []
    seeds: list[bytes] = []
    for b, d in enumerate(layout.depths):
        off = layout.col0[b]
        nodes = [bytes(k0[off]), bytes(k1[off])]
        for level in range(1, d):
            nodes = [c for n in nodes for c in _children(n)]
            for side, keys in ((0, k0), (1, k1)):
                masked = _xor_all(nodes[side::2]) ^ _int(keys[off + level])
                sums += masked.to_bytes(NODE_BYTES, "little")
        tree: list[bytes] = []
        for leaf in nodes:
            gamma, seed = _leaf_outputs(leaf)
            tree.append(gamma)
            seeds.append(seed)
        gamma_sums += _xor_all(tree).to_bytes(GAMMA_BYTES, "little")
        gammas += tree
    return [bytes(sums), bytes(gamma_sums), _pprf_digest(ctx, gammas)], seeds


def choices_for(layout: Layout, delta_bits: np.ndarray) -> np.ndarray:
    """The sender's base-OT choice bits that make its punctured points spell ``delta_bits`` (128 bits,
    LSB first): ``open_trees`` walks block ``b`` from the root, the unknown node's index gaining
    ``1 - choice`` at each level, and reads Delta's bit ``i`` of the block as bit ``i`` of the final
    index; so level ``l``'s choice is ``1 - delta[col0 + d - 1 - l]``."""
    choices = np.zeros(KAPPA, dtype=np.uint8)
    for b, d in enumerate(layout.depths):
        off = layout.col0[b]
        for level in range(d):
            choices[off + level] = 1 - int(delta_bits[off + d - 1 - level])
    return choices


def open_trees(
    layout: Layout,
    keys: np.ndarray,
    choices: np.ndarray,
    sums: bytes,
    gamma_sums: bytes,
    digest: bytes,
    ctx: bytes,
) -> tuple[np.ndarray, list[int], list[bytes]] | None:
    """The sender's side: ``(Delta's bits, rows, seeds)`` of the leaves it knows, or ``None`` if the
    PPRF consistency check fails. ``keys``: its base-OT keys; ``choices``: its base-OT choice bits."""
    delta_bits = np.zeros(KAPPA, dtype=bool)
    rows: list[int] = []
    seeds: list[bytes] = []
    gammas: list[bytes] = []
    for b, d in enumerate(layout.depths):
        off = layout.col0[b]
        c0 = int(choices[off])
        nodes: list[bytes | None] = [None, None]
        nodes[c0] = bytes(keys[off])
        path = 1 - c0  # index of the unknown node at the current level
        for level in range(1, d):
            nxt: list[bytes | None] = []
            for n in nodes:
                nxt.extend(_children(n) if n is not None else (None, None))
            side = int(choices[off + level])
            at = layout.sum_offset(b, level, side)
            total = _int(sums[at : at + NODE_BYTES]) ^ _int(keys[off + level])
            known = (n for n in nxt[side::2] if n is not None)
            nxt[2 * path + side] = (total ^ _xor_all(known)).to_bytes(NODE_BYTES, "little")
            path = 2 * path + 1 - side
            nodes = nxt
        tree: list[bytes] = []
        for x, leaf in enumerate(nodes):
            if leaf is None:
                tree.append(b"")
                continue
            gamma, seed = _leaf_outputs(leaf)
            tree.append(gamma)
            rows.append(layout.leaf0[b] + x)
            seeds.append(seed)
        lost = _int(gamma_sums[GAMMA_BYTES * b : GAMMA_BYTES * (b + 1)]) ^ _xor_all(tree)
        tree[path] = lost.to_bytes(GAMMA_BYTES, "little")
        gammas += tree
        for i in range(d):
            delta_bits[off + i] = bool((path >> i) & 1)
    if not hmac.compare_digest(_pprf_digest(ctx, gammas), digest):
        return None
    return delta_bits, rows, seeds


# ------------------------------------------------------------------------------------ small VOLE
class _LeafStreams:
    """One AES-128-CTR stream per known leaf, read in lockstep into the rows of a stream matrix.

    Rows of leaves this end does not know (the sender's punctured leaves) are zero.
    """

    def __init__(self, nrows: int, rows: Sequence[int], seeds: Sequence[bytes]) -> None:
        self.nrows = nrows
        self._rows = list(rows)
        self._encs: list[CipherContext] = [
            Cipher(algorithms.AES(bytes(s)), modes.CTR(bytes(16))).encryptor() for s in seeds
        ]
        self._missing = np.array(sorted(set(range(nrows)) - set(self._rows)), dtype=np.intp)
        self._zeros = memoryview(b"")

    def fill(self, buf: np.ndarray, width: int) -> np.ndarray:
        """The next ``8 * width`` bytes of every stream as a ``(nrows, width)`` view of ``buf``."""
        nbytes = 8 * width
        if buf.size < self.nrows * width + 2:  # update_into wants 16 bytes of slack after the last row
            raise ValueError("stream buffer too small")
        if self._zeros.nbytes < nbytes:
            self._zeros = memoryview(bytes(nbytes))
        out = memoryview(buf).cast("B")
        zeros = self._zeros[:nbytes]
        for row, enc in zip(self._rows, self._encs, strict=True):
            enc.update_into(zeros, out[row * nbytes : (row + 1) * nbytes + 16])
        mat = buf[: self.nrows * width].reshape(self.nrows, width)
        if self._missing.size:
            mat[self._missing] = 0
        return mat


def xor_reduce(leaves: np.ndarray, v: np.ndarray, u: np.ndarray) -> None:
    """Small-field VOLE sums of a group of trees, in place.

    ``leaves``: ``(blocks, 2^d, n)`` streams in leaf-index order (overwritten); writes
    ``v[:, i] = xor of leaves[:, x] over x with bit i set`` (``v``: ``(blocks, d, n)``) and
    ``u = xor of all leaves`` (``(blocks, n)``). Halves the index space one bit at a time, top bit
    first: the upper half's xor is that bit's v, and the two halves' xor is the next round's input.
    """
    size = leaves.shape[1]
    cur = leaves
    for bit in range(v.shape[1] - 1, -1, -1):
        half = size // 2
        lo, hi = cur[:, :half], cur[:, half:size]
        if half == 1:
            v[:, bit] = hi[:, 0]
            np.bitwise_xor(lo[:, 0], hi[:, 0], out=u)
        else:
            np.bitwise_xor.reduce(hi, axis=1, out=v[:, bit])
            np.bitwise_xor(lo, hi, out=lo)
        cur, size = lo, half


class _Endpoint:
    def __init__(self, context: bytes, k: int) -> None:
        self.context = context
        self.layout = Layout(k)
        self.index = 0  # global index of the next OT on this endpoint: the hash tweak
        self.calls = 0
        self.timings = Timings()
        self.hash = TCCRHash()
        self.streams: _LeafStreams | None = None
        self._cols = np.empty((KAPPA, 0), dtype=np.uint64)
        self._rows = np.empty((0, 2), dtype=np.uint64)
        self._leaf_buf = np.empty(0, dtype=np.uint64)

    def base_context(self) -> bytes:
        return self.context + b"/softspoken/k=" + str(self.layout.k).encode()

    def pprf_context(self, ch: PairChannel, sender: int, receiver: int) -> bytes:
        return context_bytes(b"softspoken-pprf", self.context, ch.channel, sender, receiver, self.layout.k)

    def check_context(self, ch: PairChannel, sender: int, receiver: int) -> bytes:
        return context_bytes(b"softspoken-chi", self.context, ch.channel, sender, receiver, self.calls)

    def cols_buffer(self, width: int) -> np.ndarray:
        """A reused (128, width) column matrix (fresh pages cost more than the reuse)."""
        if self._cols.shape[1] != width:
            self._cols = np.empty((KAPPA, width), dtype=np.uint64)
        return self._cols

    def rows_buffer(self, rows: int) -> np.ndarray:
        if self._rows.shape[0] != rows:
            self._rows = np.empty((rows, 2), dtype=np.uint64)
        return self._rows

    def vole(self, width: int, u: np.ndarray) -> np.ndarray:
        """Expand every known leaf by ``width`` words and reduce: returns the (128, width) columns v
        (v~ at the sender) and writes u (u~) into ``u`` (blocks, width)."""
        streams, layout, tm = self.streams, self.layout, self.timings
        assert streams is not None
        cols = self.cols_buffer(width)
        cw = layout.chunk_words(width)
        if self._leaf_buf.size < layout.leaves * cw + 2:
            self._leaf_buf = np.empty(layout.leaves * cw + 2, dtype=np.uint64)
        for w0 in range(0, width, cw):
            n = min(cw, width - w0)
            t0 = time.perf_counter()
            mat = streams.fill(self._leaf_buf, n)
            t1 = time.perf_counter()
            for g in layout.groups:
                nleaves = g.blocks << g.depth
                leaves = mat[g.leaf0 : g.leaf0 + nleaves].reshape(g.blocks, 1 << g.depth, n)
                v = cols[g.col0 : g.col0 + g.blocks * g.depth].reshape(g.blocks, g.depth, width)
                xor_reduce(leaves, v[:, :, w0 : w0 + n], u[g.block0 : g.block0 + g.blocks, w0 : w0 + n])
            tm.prg += t1 - t0
            tm.reduce += time.perf_counter() - t1
        return cols

    def transpose(self, cols: np.ndarray, rows: int) -> np.ndarray:
        t0 = time.perf_counter()
        out = transpose_128(cols, out=self.rows_buffer(rows))
        self.timings.transpose += time.perf_counter() - t0
        return out


def _chi_seed(ctx: bytes, receivers: bytes, senders: bytes) -> bytes:
    return hashlib.sha256(_CHI_DOMAIN + ctx + receivers + senders).digest()


# ------------------------------------------------------------------------------------ the two ends
class SoftSpokenSender:
    """The extension sender: holds Delta (the punctured points), gets both messages of every OT."""

    def __init__(
        self, context: bytes = b"", k: int = DEFAULT_K, delta: np.ndarray | bytes | None = None
    ) -> None:
        """``context`` names the session, the same at both ends; ``k``: bits per block (1..8), the same
        at both ends.

        ``delta`` (16 bytes, or ``uint64`` of shape (2,)) fixes Delta instead of ``setup`` drawing it,
        as ``KOSSender``'s does (the binary MACs of ``protocols.binary``: one Delta towards every
        receiver). Delta is the punctured points of the sender's GGM trees, which its base-OT choices
        pick (``choices_for``), so fixing it changes nothing but who draws those choices."""
        self._ep = _Endpoint(context, k)
        self._delta_bits: np.ndarray | None = None
        self._delta = np.zeros(2, dtype=np.uint64)
        self._delta_cols: list[int] = []
        self._fixed: np.ndarray | None = None
        if isinstance(delta, np.ndarray):
            if delta.dtype != np.uint64 or delta.shape != (2,):
                raise ValueError(f"delta must be uint64 of shape (2,), got {delta.dtype} {delta.shape}")
            self._fixed = unpack_bits(delta.copy(), KAPPA).astype(bool)
        elif delta is not None:
            raw = bytes(delta)
            if len(raw) != 16:
                raise ValueError(f"delta must be 16 bytes, got {len(raw)}")
            self._fixed = unpack_bits(np.frombuffer(raw, dtype=np.uint64), KAPPA).astype(bool)

    @property
    def k(self) -> int:
        return self._ep.layout.k

    @property
    def timings(self) -> Timings:
        return self._ep.timings

    @property
    def index(self) -> int:
        """The global index of the next OT (the number of OTs extended so far)."""
        return self._ep.index

    @property
    def delta(self) -> np.ndarray:
        """Delta as ``uint64`` of shape (2,) (a copy). Secret: for tests and diagnostics only."""
        if self._delta_bits is None:
            raise RuntimeError("setup() has not run")
        return self._delta.copy()

    async def setup(self, ch: PairChannel) -> None:
        """Base OTs as their receiver (random choices), then open the receiver's GGM trees."""
        ep, peer = self._ep, ch.peer
        layout = ep.layout
        if self._fixed is not None:
            choices = choices_for(layout, self._fixed)
        else:
            choices = unpack_bits(np.frombuffer(os.urandom(16), dtype=np.uint64), KAPPA)
        keys = await base_ot_recv(ch, choices, context=ep.base_context())
        msg = expect_list(await ch.recv(), peer, "SoftSpokenOT tree message", 3)
        sums = bytes(expect_bytes(msg[0], peer, "the GGM level sums", layout.sums_bytes))
        gamma_sums = bytes(expect_bytes(msg[1], peer, "the PPRF check sums", layout.gamma_sums_bytes))
        digest = bytes(expect_bytes(msg[2], peer, "the PPRF check digest", DIGEST_BYTES))
        ctx = ep.pprf_context(ch, ch.party, peer)
        opened = await run_sync(open_trees, layout, keys, choices, sums, gamma_sums, digest, ctx)
        if opened is None:
            raise AbortError(
                f"party {peer} failed the SoftSpokenOT PPRF consistency check (inconsistent GGM trees)",
                culprit=peer,
            )
        delta_bits, rows, seeds = opened
        if self._fixed is not None and not np.array_equal(delta_bits.astype(bool), self._fixed):
            raise RuntimeError("the punctured points differ from the Delta they were chosen for")
        ep.streams = await run_sync(_LeafStreams, layout.leaves, rows, seeds)
        self._delta_bits = delta_bits
        self._delta = pack_bits(delta_bits, 2)
        self._delta_cols = [int(c) for c in np.flatnonzero(delta_bits)]

    async def extend_correlated(self, ch: PairChannel, m: int) -> np.ndarray:
        """m checked correlated OTs: rows ``q_j`` (uint64 (m, 2)) with ``q_j = t_j ^ x_j Delta``.

        The raw rows are *not* independent keys (their xor is Delta); ``extend`` hashes them.
        """
        return (await self._extend(ch, m))[:m].copy()

    async def extend(self, ch: PairChannel, m: int) -> tuple[np.ndarray, np.ndarray]:
        """m random OTs: ``(v0, v1)``, each ``uint64`` of shape (m, 2); the receiver gets v_{x_j}[j]."""
        start = self._ep.index
        q = await self._extend(ch, m)

        def hashes() -> tuple[np.ndarray, np.ndarray]:
            t0 = time.perf_counter()
            v0 = self._ep.hash.hash_rows(start, q[:m])
            v1 = self._ep.hash.hash_rows(start, q[:m], xor=self._delta)
            self.timings.hash += time.perf_counter() - t0
            return v0, v1

        return await run_sync(hashes)

    async def _extend(self, ch: PairChannel, m: int) -> np.ndarray:
        ep = self._ep
        if ep.streams is None or self._delta_bits is None:
            raise RuntimeError("SoftSpokenSender.setup() must run before extend()")
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m <= 0:
            raise ValueError(f"m must be a positive integer, got {m!r}")
        m = int(m)
        tm, peer, layout = ep.timings, ch.peer, ep.layout
        rows = padded_rows(m)
        width = rows // 64
        ctx = ep.check_context(ch, ch.party, peer)

        msg = expect_list(await ch.recv(), peer, "SoftSpokenOT corrections and commitment", 2)
        c_raw = expect_bytes(msg[0], peer, "the SoftSpokenOT corrections", layout.blocks * 8 * width)
        com = bytes(expect_bytes(msg[1], peer, "the check-seed commitment", DIGEST_BYTES))
        mine = os.urandom(SEED_SHARE_BYTES)
        await ch.send(mine)

        delta_cols, block_of_col = self._delta_cols, layout.block_of_col

        def rows_q() -> np.ndarray:
            y = np.empty((layout.blocks, width), dtype=np.uint64)
            q_cols = ep.vole(width, y)  # v~ and u~
            t0 = time.perf_counter()
            c = np.frombuffer(c_raw, dtype=np.uint64).reshape(layout.blocks, width)
            np.bitwise_xor(y, c, out=y)
            for col in delta_cols:
                np.bitwise_xor(q_cols[col], y[block_of_col[col]], out=q_cols[col])
            tm.other += time.perf_counter() - t0
            return ep.transpose(q_cols, rows)

        # in a worker thread: the peer's (or another pair's) work can use the other core meanwhile
        q = await run_sync(rows_q)

        opening = expect_list(await ch.recv(), peer, "check-seed opening and check values", 4)
        nonce = bytes(expect_bytes(opening[0], peer, "the commitment nonce", NONCE_BYTES))
        theirs = bytes(expect_bytes(opening[1], peer, "the check-seed share", SEED_SHARE_BYTES))
        x_tilde = bytes(expect_bytes(opening[2], peer, "the check value x~", BLOCK))
        t_tilde = bytes(expect_bytes(opening[3], peer, "the check value t~", BLOCK))
        t0 = time.perf_counter()
        if not verify(ctx, peer, com, nonce, theirs):
            raise CommitmentError(f"party {peer} opened its OT-extension check seed wrongly", culprit=peer)
        poly = PolyHash(_chi_seed(ctx, theirs, mine), rows)
        expected = xor_bytes(t_tilde, gcm_mul(x_tilde, self._delta.tobytes()))
        if not hmac.compare_digest(poly.affine(q), expected):
            raise AbortError(
                f"party {peer} failed the SoftSpokenOT correlation check (inconsistent choice bits)",
                culprit=peer,
            )
        tm.check += time.perf_counter() - t0
        tm.calls += 1
        ep.calls += 1
        ep.index += m
        return q


class SoftSpokenReceiver:
    """The extension receiver: chooses x_j and gets one message of every OT."""

    def __init__(self, context: bytes = b"", k: int = DEFAULT_K) -> None:
        """``context`` names the session, the same at both ends; ``k``: bits per block (1..8), the same
        at both ends."""
        self._ep = _Endpoint(context, k)

    @property
    def k(self) -> int:
        return self._ep.layout.k

    @property
    def timings(self) -> Timings:
        return self._ep.timings

    @property
    def index(self) -> int:
        return self._ep.index

    async def setup(self, ch: PairChannel) -> None:
        """Base OTs as their sender, then plant the GGM trees and send their level sums and check."""
        ep = self._ep
        k0, k1 = await base_ot_send(ch, KAPPA, context=ep.base_context())
        ctx = ep.pprf_context(ch, ch.peer, ch.party)
        msg, seeds = await run_sync(plant_trees, ep.layout, k0, k1, ctx)
        await ch.send(msg)
        ep.streams = await run_sync(_LeafStreams, ep.layout.leaves, range(ep.layout.leaves), seeds)

    async def extend_correlated(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        """Rows ``t_j`` (uint64 (m, 2)) of m checked correlated OTs; see ``extend_correlated`` of the
        sender."""
        return (await self._extend(ch, choices))[0].copy()

    async def extend(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        """m random OTs with choice bits ``choices`` (bool/0-1, length m): ``v`` uint64 (m, 2)."""
        start = self._ep.index
        t, m = await self._extend(ch, choices)

        def hashes() -> np.ndarray:
            t0 = time.perf_counter()
            v = self._ep.hash.hash_rows(start, t)
            self.timings.hash += time.perf_counter() - t0
            return v

        return await run_sync(hashes)

    async def _extend(self, ch: PairChannel, choices: np.ndarray) -> tuple[np.ndarray, int]:
        ep = self._ep
        if ep.streams is None:
            raise RuntimeError("SoftSpokenReceiver.setup() must run before extend()")
        x = np.asarray(choices)
        if x.ndim != 1 or x.size == 0:
            raise ValueError("choices must be a non-empty 1-d array")
        if x.dtype != np.bool_:
            if not np.all((x == 0) | (x == 1)):
                raise ValueError("choices must be bits")
            x = x.astype(bool)
        tm, peer, layout = ep.timings, ch.peer, ep.layout
        m = x.size
        rows = padded_rows(m)
        width = rows // 64
        ctx = ep.check_context(ch, peer, ch.party)
        x_full = np.empty(rows, dtype=bool)

        def matrix() -> tuple[np.ndarray, np.ndarray]:
            c = np.empty((layout.blocks, width), dtype=np.uint64)  # sent without a copy: fresh each time
            t_cols = ep.vole(width, c)
            t0 = time.perf_counter()
            x_full[:m] = x
            x_full[m:] = unpack_bits(np.frombuffer(os.urandom(8 * width), dtype=np.uint64), rows - m)
            np.bitwise_xor(c, pack_bits(x_full, width), out=c)  # c_b = u_b ^ x, every block
            tm.other += time.perf_counter() - t0
            return t_cols, c

        # the bulk work runs in worker threads: the peer's (or another pair's) work can use the other
        # core meanwhile; the timings count compute only
        t_cols, c = await run_sync(matrix)
        mine = os.urandom(SEED_SHARE_BYTES)
        com, nonce = commit(ctx, ch.party, mine)
        await ch.send([memoryview(c).cast("B"), com])
        t = await run_sync(ep.transpose, t_cols, rows)

        theirs = bytes(expect_bytes(await ch.recv(), peer, "the check-seed share", SEED_SHARE_BYTES))
        t0 = time.perf_counter()
        poly = PolyHash(_chi_seed(ctx, mine, theirs), rows)
        t_tilde = poly.affine(t)
        # x~ = sum x_j chi_j is the linear part of the hash of the rows x_j * 1: flip the unit bit of t_j
        # where x_j = 1, hash, and flip back (as in kos.py)
        flip = x_full.view(np.uint8).astype(np.uint64) << np.uint64(7)
        low = t[:, 0]
        np.bitwise_xor(low, flip, out=low)
        x_tilde = xor_bytes(poly.affine(t), t_tilde)
        np.bitwise_xor(low, flip, out=low)
        tm.check += time.perf_counter() - t0
        await ch.send([nonce, mine, x_tilde, t_tilde])
        tm.calls += 1
        ep.calls += 1
        ep.index += m
        return t[:m], m
