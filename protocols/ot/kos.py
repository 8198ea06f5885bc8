"""KOS OT extension (Keller-Orsini-Scholl, CRYPTO 2015): IKNP plus a correlation check.

From 128 base OTs per direction this makes any number of random 1-out-of-2 OTs of 128-bit strings, at
the cost of symmetric crypto only. The roles reverse with respect to the base OTs (see MASCOT.md s. 2):

* the extension **receiver** (choice bits x) is the base-OT *sender* and holds 128 seed pairs;
* the extension **sender** picks Delta in {0,1}^128 and is the base-OT *receiver* with Delta's bits as
  choices, so it holds seed ``k^{Delta_l}_l`` of pair l.

One ``extend`` of m OTs (m' = m + 128 + 40 rows, rounded up to a multiple of 64; the extra choice bits
are random and the extra rows are dropped):

1. receiver: ``t0_l = G(k0_l)``, ``u_l = t0_l ^ G(k1_l) ^ x`` for the 128 columns; sends u and a
   commitment to its half of the check seed.
2. sender: ``q_l = G(k^{Delta_l}_l) ^ Delta_l u_l``; transposed to rows, ``q_j = t_j ^ x_j Delta``;
   sends its half of the seed in the clear.
3. receiver: opens its half; with chi from the joint seed sends ``x~ = sum x_j chi_j`` and
   ``t~ = sum t_j chi_j`` (GF(2^128)); sender accepts iff ``sum q_j chi_j = t~ + x~ Delta``, else
   ``AbortError``. A receiver that used different x in different columns passes only by guessing the
   Delta bits of those columns, which is what the 128 + 40 padding rows pay for.
4. outputs: sender ``(H(j, q_j), H(j, q_j ^ Delta))``, receiver ``H(j, t_j)``, with H the fixed-key-AES
   TCCR hash of ``crhash.py`` and j the global index of the OT on this endpoint pair (never repeats).

G is AES-128-CTR keyed by the seed; each endpoint keeps one running stream per seed, so every extend
consumes fresh output (the CTR counter is the "counter per seed"). Two-party coin toss: the receiver
commits before it sees the sender's half and the sender's half comes after u, so neither can steer chi
once its own inputs are fixed; a wrong opening raises ``CommitmentError``.

**Deviation from the paper, to be reviewed**: chi is not m' independent uniform elements but powers of
one random element per chunk of 2^14 rows (``gf128.PolyHash``, computed by OpenSSL's GHASH), the same
almost-universal hash emp-ot uses for this check. A GHASH pass costs ~3.5 ms per 2^20 rows (the sender
makes one, the receiver two), against >100 ms for numpy table lookups (measured); each 2^-128 term of
the paper's bound becomes <= 2^-114. Uniform chi would need only ``PolyHash`` swapped out.

Output format: 128-bit strings as ``uint64`` arrays of shape ``(m, 2)`` (two little-endian words per
row, low word first). Choice bits: bool (or 0/1) arrays of length m.

Both endpoints are plain objects with ``setup`` (once) and ``extend`` (repeatable); they are not safe
for concurrent extends on the same object, and the two ends' calls must match one for one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterable
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

KAPPA = 128
STAT_SEC = 40
SEED_SHARE_BYTES = 32


def padded_rows(m: int) -> int:
    """m' for m OTs: m + 128 + 40 rows, rounded up to a whole number of 64-bit words per column."""
    return -(-(m + KAPPA + STAT_SEC) // 64) * 64


@dataclass
class Timings:
    """Seconds spent per phase, summed over the extends of one endpoint (for the benchmark)."""

    prg: float = 0.0
    transpose: float = 0.0
    check: float = 0.0
    hash: float = 0.0
    other: float = 0.0
    calls: int = 0


class _Streams:
    """One AES-128-CTR stream per seed, read in lockstep into a reused (rows, W) uint64 matrix."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._encs: list[CipherContext] = [
            Cipher(algorithms.AES(bytes(k)), modes.CTR(bytes(16))).encryptor() for k in keys
        ]
        self._zeros = memoryview(b"")
        self._buf = np.empty(0, dtype=np.uint64)

    def next(self, width: int, fresh: bool = False) -> np.ndarray:
        """The next ``8 * width`` bytes of every stream, as rows of a ``(len(keys), width)`` matrix."""
        nrows = len(self._encs)
        nbytes = 8 * width
        if self._zeros.nbytes < nbytes:
            self._zeros = memoryview(bytes(nbytes))
        size = nrows * width + 2  # update_into insists on 16 bytes of slack after the last row
        if fresh or self._buf.size != size:
            buf = np.empty(size, dtype=np.uint64)
            if not fresh:
                self._buf = buf
        else:
            buf = self._buf
        out = memoryview(buf).cast("B")
        zeros = self._zeros[:nbytes]
        for i, enc in enumerate(self._encs):
            enc.update_into(zeros, out[i * nbytes : (i + 1) * nbytes + 16])
        return buf[: nrows * width].reshape(nrows, width)


def _chi_seed(ctx: bytes, mine: bytes, theirs: bytes) -> bytes:
    return hashlib.sha256(b"trio-spdz/kos/chi/v1" + ctx + mine + theirs).digest()


class _Endpoint:
    def __init__(self, context: bytes = b"") -> None:
        self.context = context
        self.index = 0  # global index of the next OT on this endpoint pair: the hash tweak
        self.calls = 0
        self.timings = Timings()
        self._hash = TCCRHash()
        self._rows = np.empty((0, 2), dtype=np.uint64)

    def rows_buffer(self, rows: int) -> np.ndarray:
        """A reused (rows, 2) buffer for the transposed matrix (fresh pages cost more than the copy)."""
        if self._rows.shape[0] != rows:
            self._rows = np.empty((rows, 2), dtype=np.uint64)
        return self._rows

    def _check_context(self, ch: PairChannel, sender: int, receiver: int) -> bytes:
        return context_bytes(b"kos-chi", self.context, ch.channel, sender, receiver, self.calls)


class KOSSender:
    """The extension sender: holds Delta, gets both messages of every OT."""

    def __init__(self, context: bytes = b"", delta: np.ndarray | bytes | None = None) -> None:
        """``context`` names the session (e.g. ``context_bytes(session_id, ...)``), the same at both ends.

        ``delta`` (16 bytes, or ``uint64`` of shape (2,)) fixes Delta instead of ``setup`` drawing it:
        a party whose correlated OTs must share one Delta towards every receiver (the binary MACs of
        ``protocols.binary``, where Delta is its MAC key share) gives each of its senders the same
        value. The base OTs stay independent per receiver.
        """
        self._ep = _Endpoint(context)
        self._delta_bits: np.ndarray | None = None
        self._delta = np.zeros(2, dtype=np.uint64)
        self._streams: _Streams | None = None
        self._fixed: bytes | None = None
        if isinstance(delta, np.ndarray):
            if delta.dtype != np.uint64 or delta.shape != (2,):
                raise ValueError(f"delta must be uint64 of shape (2,), got {delta.dtype} {delta.shape}")
            self._fixed = delta.tobytes()
        elif delta is not None:
            self._fixed = bytes(delta)
            if len(self._fixed) != 16:
                raise ValueError(f"delta must be 16 bytes, got {len(self._fixed)}")

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
        if self._streams is None:
            raise RuntimeError("setup() has not run")
        return self._delta.copy()

    async def setup(self, ch: PairChannel) -> None:
        """Pick Delta (unless it was given) and run the 128 base OTs (as their receiver, choices =
        Delta's bits)."""
        raw = self._fixed if self._fixed is not None else os.urandom(16)
        bits = unpack_bits(np.frombuffer(raw, dtype=np.uint64), KAPPA)
        keys = await base_ot_recv(ch, bits, context=self._ep.context + b"/kos")
        self._delta_bits = bits
        self._delta = pack_bits(bits, 2)
        self._streams = _Streams(bytes(k) for k in keys)

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
            v0 = self._ep._hash.hash_rows(start, q[:m])
            v1 = self._ep._hash.hash_rows(start, q[:m], xor=self._delta)
            self.timings.hash += time.perf_counter() - t0
            return v0, v1

        return await run_sync(hashes)

    async def _extend(self, ch: PairChannel, m: int) -> np.ndarray:
        if self._streams is None or self._delta_bits is None:
            raise RuntimeError("KOSSender.setup() must run before extend()")
        if m <= 0:
            raise ValueError(f"m must be positive, got {m}")
        ep, tm, peer = self._ep, self._ep.timings, ch.peer
        rows = padded_rows(m)
        width = rows // 64
        ctx = ep._check_context(ch, ch.party, peer)

        msg = expect_list(await ch.recv(), peer, "OT-extension matrix and commitment", 2)
        u_raw = expect_bytes(msg[0], peer, "the OT-extension matrix u", KAPPA * 8 * width)
        com = bytes(expect_bytes(msg[1], peer, "the check-seed commitment", DIGEST_BYTES))
        mine = os.urandom(SEED_SHARE_BYTES)
        await ch.send(mine)

        streams, delta_bits = self._streams, self._delta_bits

        def rows_q() -> np.ndarray:
            t0 = time.perf_counter()
            q_cols = streams.next(width)
            t1 = time.perf_counter()
            u = np.frombuffer(u_raw, dtype=np.uint64).reshape(KAPPA, width)
            for col in np.flatnonzero(delta_bits):
                np.bitwise_xor(q_cols[col], u[col], out=q_cols[col])
            t2 = time.perf_counter()
            q = transpose_128(q_cols, out=ep.rows_buffer(rows))
            tm.prg += t1 - t0
            tm.other += t2 - t1
            tm.transpose += time.perf_counter() - t2
            return q

        # in a worker thread: the peer's (or another pair's) work can use the other core meanwhile
        q = await run_sync(rows_q)

        opening = expect_list(await ch.recv(), peer, "check-seed opening and check values", 4)
        nonce = bytes(expect_bytes(opening[0], peer, "the commitment nonce", NONCE_BYTES))
        theirs = bytes(expect_bytes(opening[1], peer, "the check-seed share", SEED_SHARE_BYTES))
        x_tilde = bytes(expect_bytes(opening[2], peer, "the check value x~", BLOCK))
        t_tilde = bytes(expect_bytes(opening[3], peer, "the check value t~", BLOCK))
        t4 = time.perf_counter()
        if not verify(ctx, peer, com, nonce, theirs):
            raise CommitmentError(f"party {peer} opened its OT-extension check seed wrongly", culprit=peer)
        poly = PolyHash(_chi_seed(ctx, theirs, mine), rows)
        expected = xor_bytes(t_tilde, gcm_mul(x_tilde, self._delta.tobytes()))
        if not hmac.compare_digest(poly.affine(q), expected):
            raise AbortError(
                f"party {peer} failed the OT-extension correlation check (inconsistent choice bits)",
                culprit=peer,
            )
        t5 = time.perf_counter()
        tm.check += t5 - t4
        tm.calls += 1
        ep.calls += 1
        ep.index += m
        return q


class KOSReceiver:
    """The extension receiver: chooses x_j and gets one message of every OT."""

    def __init__(self, context: bytes = b"") -> None:
        """``context`` names the session (e.g. ``context_bytes(session_id, ...)``), the same at both ends."""
        self._ep = _Endpoint(context)
        self._streams0: _Streams | None = None
        self._streams1: _Streams | None = None

    @property
    def timings(self) -> Timings:
        return self._ep.timings

    @property
    def index(self) -> int:
        return self._ep.index

    async def setup(self, ch: PairChannel) -> None:
        """Run the 128 base OTs as their sender; keep both seeds of every pair."""
        k0, k1 = await base_ot_send(ch, KAPPA, context=self._ep.context + b"/kos")
        self._streams0 = _Streams(bytes(k) for k in k0)
        self._streams1 = _Streams(bytes(k) for k in k1)

    async def extend_correlated(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        """Rows ``t_j`` (uint64 (m, 2)) of m checked correlated OTs; see ``KOSSender.extend_correlated``."""
        return (await self._extend(ch, choices))[0].copy()

    async def extend(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        """m random OTs with choice bits ``choices`` (bool/0-1, length m): ``v`` uint64 (m, 2)."""
        start = self._ep.index
        t, m = await self._extend(ch, choices)

        def hashes() -> np.ndarray:
            t0 = time.perf_counter()
            v = self._ep._hash.hash_rows(start, t)
            self.timings.hash += time.perf_counter() - t0
            return v

        return await run_sync(hashes)

    async def _extend(self, ch: PairChannel, choices: np.ndarray) -> tuple[np.ndarray, int]:
        if self._streams0 is None or self._streams1 is None:
            raise RuntimeError("KOSReceiver.setup() must run before extend()")
        x = np.asarray(choices)
        if x.ndim != 1 or x.size == 0:
            raise ValueError("choices must be a non-empty 1-d array")
        if x.dtype != np.bool_:
            if not np.all((x == 0) | (x == 1)):
                raise ValueError("choices must be bits")
            x = x.astype(bool)
        ep, tm, peer = self._ep, self._ep.timings, ch.peer
        m = x.size
        rows = padded_rows(m)
        width = rows // 64
        ctx = ep._check_context(ch, peer, ch.party)

        s0, s1 = self._streams0, self._streams1
        x_full = np.empty(rows, dtype=bool)

        def matrix() -> tuple[np.ndarray, np.ndarray]:
            tx = time.perf_counter()
            x_full[:m] = x
            x_full[m:] = unpack_bits(np.frombuffer(os.urandom(8 * width), dtype=np.uint64), rows - m)
            x_words = pack_bits(x_full, width)
            t0 = time.perf_counter()
            t_cols = s0.next(width)
            u = s1.next(width, fresh=True)  # sent without a copy: must not be reused
            t1 = time.perf_counter()
            np.bitwise_xor(u, t_cols, out=u)
            np.bitwise_xor(u, x_words, out=u)
            tm.prg += t1 - t0
            tm.other += time.perf_counter() - t1 + t0 - tx
            return t_cols, u

        def rows_t() -> np.ndarray:
            t3 = time.perf_counter()
            t = transpose_128(t_cols, out=ep.rows_buffer(rows))
            tm.transpose += time.perf_counter() - t3
            return t

        # the bulk work runs in worker threads: the peer's (or another pair's) work can use the other
        # core meanwhile; the timings count compute only
        t_cols, u = await run_sync(matrix)
        mine = os.urandom(SEED_SHARE_BYTES)
        com, nonce = commit(ctx, ch.party, mine)
        await ch.send([memoryview(u).cast("B"), com])
        t = await run_sync(rows_t)

        theirs = bytes(expect_bytes(await ch.recv(), peer, "the check-seed share", SEED_SHARE_BYTES))
        t0 = time.perf_counter()
        poly = PolyHash(_chi_seed(ctx, mine, theirs), rows)
        t_tilde = poly.affine(t)
        # x~ = sum x_j chi_j is the linear part of the hash of the rows x_j * 1; rather than hash such a
        # matrix and a zero one, flip the unit bit of t_j where x_j = 1, hash, and flip back
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
