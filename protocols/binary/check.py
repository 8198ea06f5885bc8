"""Opening binary values and the batched checks that make openings and preprocessing safe.

Everything a party must verify about binary MACs reduces to "these 128-bit shares XOR to zero", and
every such statement is checked in one place, ``BitChecker.check``, with one fresh coin toss and one
commit-then-reveal round for all of them:

* **opened bits** (``open``): with coefficients ``chi_j`` from the coin, party i commits to
  ``sigma_i = sum_j chi_j (m_ij + b_j Delta_i)`` (GF(2^128), ``b_j`` the opened bit as this party saw
  it). Honest shares give ``XOR_i sigma_i = sum_j chi_j (b_j Delta + b_j Delta) = 0``. A wrong opened
  bit ``b_j + e_j`` leaves ``(sum_j chi_j e_j) Delta`` (as seen by an honest party), which the
  adversary must cancel without knowing the honest ``Delta_h``: probability about 2^-114 (see chi).
* **authentications** (``add_auth``, the consistency check of Frederiksen-Keller-Orsini-Scholl 2015,
  in the form of Hazay-Scholl-Soria-Vazquez 2017): the owner of freshly authenticated bits announces
  ``y = sum_j chi_j x_j + sum_{k<128} X^k r_k`` over its bits x and 128 extra random bits r, and
  ``y`` is checked like an opened value whose share sits with the owner. It catches a sender that used
  another Delta towards some receiver and an owner whose choice bits differ between peers or from its
  share; the ``X^k r_k`` term is a uniform element of GF(2^128), so y says nothing about x.
* **zero checks** (``add_zero``): any other linear relation, such as the leaky-AND check of
  ``triples.py``, given as a function from a seed to this party's 128-bit share of something that
  must be zero.

Each kind keeps its own 16-byte value in the commitment (one per batch), so errors of different
checks can never cancel each other. A digest of every value a party broadcast (the announcements) is
committed with them: a party that told two parties different things is caught.

chi: ``gf128.PolyHash`` (powers of one random element per chunk of 2^14 rows, computed by OpenSSL's
GHASH), as in the KOS check: a nonzero error survives with probability <= (2^14 + 1) / 2^128 = 2^-114
per chunk instead of 2^-128. The mask term uses the fixed powers ``X^k`` (k < 128), so that ``r ->
sum X^k r_k`` is a bijection from 128 bits to the field.

Any failure raises ``MacCheckError`` (``ProtocolError`` for malformed messages, ``CommitmentError``
for a bad opening) after calling ``on_fail``: a failed check can reveal ``Delta`` times an error the
adversary knows, so the key must be retired. Field encoding: the 16 bytes of a row as they sit in
memory, read as a GCM block (``gf128``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..commitments import coin_toss, commit_and_reveal
from ..concurrency import run_sync
from ..errors import AbortError, MacCheckError, ProtocolError
from ..net import exchange, expect_bytes, expect_list
from ..ot.gf128 import BLOCK, PolyHash, gcm_mul
from .bits import U64, AuthBits, BinaryContext, times_delta

if TYPE_CHECKING:
    from ..online import Session

MASK_BITS = 128
DEFAULT_CHECK_BOUND = 1 << 22
"""Opened bits after which ``open`` runs a check by itself (a bound on memory, not on security)."""
_R = 0xE1 << 120
ZERO = bytes(BLOCK)


# ---------------------------------------------------------------------------------------- GF(2^128)
def sub_seed(seed: bytes, *label: Any) -> bytes:
    """A 32-byte seed for one use of a tossed coin (labels keep the uses independent)."""
    h = hashlib.sha256(b"trio-spdz/binary/seed/v1" + seed)
    for part in label:
        b = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(b).to_bytes(4, "big") + b)
    return h.digest()


def bit_rows(bits: np.ndarray) -> np.ndarray:
    """Bits as field elements, one row each: 0 or GCM's unit (bit 7 of byte 0)."""
    rows = np.zeros((bits.size, 2), dtype=U64)
    rows[:, 0] = bits.astype(U64) << U64(7)
    return rows


def row_int(row: np.ndarray) -> int:
    """A row as GCM's big-endian integer (bit 127 is the coefficient of X^0)."""
    return int.from_bytes(np.ascontiguousarray(row, dtype=U64).tobytes(), "big")


def x_power_sum(rows: np.ndarray) -> bytes:
    """``sum_k X^k rows[k]`` (Horner's rule; multiplying by X is a shift and a conditional reduction)."""
    acc = 0
    for k in range(rows.shape[0] - 1, -1, -1):
        acc = (acc >> 1) ^ _R if acc & 1 else acc >> 1
        acc ^= row_int(rows[k])
    return acc.to_bytes(BLOCK, "big")


def xor_blocks(blocks: Sequence[bytes]) -> bytes:
    acc = 0
    for b in blocks:
        acc ^= int.from_bytes(b, "big")
    return acc.to_bytes(BLOCK, "big")


def linear(seed: bytes, rows: np.ndarray) -> bytes:
    """``sum_j chi_j rows[j]`` with chi from ``seed`` (zero for no rows)."""
    if rows.shape[0] == 0:
        return ZERO
    return PolyHash(seed, rows.shape[0]).linear(np.ascontiguousarray(rows))


# ---------------------------------------------------------------------------------------- checks
@dataclass
class PendingAuth:
    """One owner's freshly authenticated bits, as one party holds them, awaiting the consistency check.

    ``macs[k]`` is this party's MAC-share component of the owner's k-th batch (at the owner:
    ``x Delta_i + XOR_j M_ij``; elsewhere the key ``K_ij``); ``bits`` exist at the owner only. The
    ``mask_*`` rows are the 128 extra random bits that hide the announced combination.
    """

    owner: int
    macs: list[np.ndarray]
    mask_macs: np.ndarray
    bits: list[np.ndarray] | None = None
    mask_bits: np.ndarray | None = None


class BitChecker:
    """The unchecked binary state of one session at one party, and the check that clears it."""

    def __init__(
        self,
        s: Session,
        ctx: BinaryContext,
        on_fail: Callable[[], None],
        check_bound: int = DEFAULT_CHECK_BOUND,
    ) -> None:
        self.s = s
        self.ctx = ctx
        self.on_fail = on_fail
        self.check_bound = check_bound
        self._bits: list[np.ndarray] = []
        self._macs: list[np.ndarray] = []
        self._auths: list[PendingAuth] = []
        self._zeros: list[Callable[[bytes], bytes]] = []
        self._broadcasts = 0
        self._transcript = hashlib.sha256(b"trio-spdz/binary/transcript/v1" + s.session_id.encode())
        self.stats = {"checks": 0, "opened": 0}

    @property
    def unchecked(self) -> int:
        """Opened bits since the last check."""
        return sum(b.size for b in self._bits)

    @property
    def pending(self) -> bool:
        return bool(self._bits or self._auths or self._zeros or self._broadcasts)

    def add_auth(self, auth: PendingAuth) -> None:
        self._auths.append(auth)

    def add_zero(self, share: Callable[[bytes], bytes]) -> None:
        """``share(seed)`` is this party's 16-byte share of a value that must be zero; ``seed`` comes
        from the check's coin (tossed after this call), the same at every party."""
        self._zeros.append(share)

    def record_broadcast(self, step: int, frm: int, *parts: bytes) -> None:
        t = self._transcript
        t.update(step.to_bytes(8, "big") + frm.to_bytes(4, "big"))
        for p in parts:
            t.update(len(p).to_bytes(8, "big") + p)
        self._broadcasts += 1

    def fail(self) -> None:
        """Forget everything unchecked and retire the key (a failed check may have revealed it)."""
        self._bits.clear()
        self._macs.clear()
        self._auths.clear()
        self._zeros.clear()
        self.on_fail()

    # ------------------------------------------------------------------ opening
    async def open(self, xs: Sequence[AuthBits]) -> list[np.ndarray]:
        """Open several vectors in one round: every party sends its packed shares to every other.
        The result is *unchecked* (it is on the to-check list) and nothing derived from it may leave
        the session before ``check``."""
        sizes = [x.size for x in xs]
        total = sum(sizes)
        if total == 0:
            return [np.zeros(0, dtype=np.uint8) for _ in xs]
        mine = np.concatenate([x.bits for x in xs])
        macs = np.concatenate([x.macs for x in xs])
        try:
            step = self.s.next_step()
            msgs = await exchange(self.s.net, step, np.packbits(mine, bitorder="little").tobytes())
            acc = mine.copy()
            for j, msg in enumerate(msgs):
                if j != self.ctx.party:
                    acc ^= unpack_exact(msg, j, total, "share of opened bits")
        except AbortError:
            self.fail()
            raise
        self._bits.append(acc)
        self._macs.append(macs)
        self.stats["opened"] += total
        out, i = [], 0
        for size in sizes:
            out.append(acc[i : i + size])
            i += size
        if self.unchecked >= self.check_bound:
            await self.check()
        return out

    # ------------------------------------------------------------------ the check
    async def check(self) -> None:
        """Check everything pending (openings, authentications, zero relations); abort on failure."""
        if not self.pending:
            return
        s = self.s
        bits, macs, auths, zeros = self._bits, self._macs, self._auths, self._zeros
        self._bits, self._macs, self._auths, self._zeros = [], [], [], []
        try:
            steps = (s.next_step(), s.next_step())
            seed = await coin_toss(s.net, steps, s.commit_context("binary-check-coin", steps[0]))
            prepared = await run_sync(self._prepare, seed, bits, macs, auths, zeros)
            opened_sigma, combs, ys_mine, zero_sigmas = prepared
            ys = await self._announce(auths, ys_mine)
            delta = self.ctx.delta.tobytes()
            auth_sigmas = [
                bytes(a ^ b for a, b in zip(c, gcm_mul(y, delta), strict=True))
                for c, y in zip(combs, ys, strict=True)
            ]
            parts = [opened_sigma, *auth_sigmas, *zero_sigmas]
            digest = self._transcript.copy().digest()
            mine = b"".join(parts) + digest
            steps2 = (s.next_step(), s.next_step())
            revealed = await commit_and_reveal(
                s.net, steps2, s.commit_context("binary-check-sigma", steps2[0]), mine
            )
            totals = [0] * len(parts)
            for j, data in enumerate(revealed):
                if len(data) != len(mine):
                    raise ProtocolError(f"party {j} revealed a malformed binary check value", culprit=j)
                if not hmac.compare_digest(data[-32:], digest):
                    raise MacCheckError(
                        f"broadcast consistency check failed: party {j} saw different broadcast values",
                        culprit=j,
                    )
                for k in range(len(parts)):
                    totals[k] ^= int.from_bytes(data[BLOCK * k : BLOCK * (k + 1)], "big")
            if totals[0]:
                raise MacCheckError("binary MAC check failed: opened bits do not match their MACs")
            if any(totals[1 : 1 + len(auths)]):
                raise MacCheckError(
                    "bit authentication check failed: a party used inconsistent choice bits or keys"
                )
            if any(totals[1 + len(auths) :]):
                raise MacCheckError("binary relation check failed (e.g. an AND triple is wrong)")
        except AbortError:
            self.fail()
            raise
        self._broadcasts = 0
        self.stats["checks"] += 1

    def _prepare(
        self,
        seed: bytes,
        bits: list[np.ndarray],
        macs: list[np.ndarray],
        auths: list[PendingAuth],
        zeros: list[Callable[[bytes], bytes]],
    ) -> tuple[bytes, list[bytes], list[bytes], list[bytes]]:
        """The hashing: opened bits' sigma, each authentication's MAC combination (and, at the owner,
        its announcement), each zero relation's share."""
        delta = self.ctx.delta
        opened = ZERO
        if bits:
            all_bits = np.concatenate(bits)
            rows = np.concatenate(macs)
            rows ^= times_delta(all_bits, delta)
            opened = linear(sub_seed(seed, "opened"), rows)
        combs: list[bytes] = []
        ys: list[bytes] = []
        for a, auth in enumerate(auths):
            seeds = [sub_seed(seed, "auth", a, k) for k in range(len(auth.macs))]
            parts = [linear(sd, m) for sd, m in zip(seeds, auth.macs, strict=True)]
            combs.append(xor_blocks([*parts, x_power_sum(auth.mask_macs)]))
            if auth.owner == self.ctx.party:
                assert auth.bits is not None and auth.mask_bits is not None
                ys_parts = [linear(sd, bit_rows(b)) for sd, b in zip(seeds, auth.bits, strict=True)]
                ys.append(xor_blocks([*ys_parts, x_power_sum(bit_rows(auth.mask_bits))]))
        zero_sigmas = [fn(sub_seed(seed, "zero", k)) for k, fn in enumerate(zeros)]
        return opened, combs, ys, zero_sigmas

    async def _announce(self, auths: list[PendingAuth], mine: list[bytes]) -> list[bytes]:
        """Every owner announces its combinations (one round, everyone sends, possibly nothing)."""
        if not auths:
            return []
        n = self.ctx.n
        owned = [sum(1 for a in auths if a.owner == j) for j in range(n)]
        step = self.s.next_step()
        msgs = await exchange(self.s.net, step, list(mine))
        got: list[list[bytes]] = []
        for j, msg in enumerate(msgs):
            items = expect_list(msg, j, "bit-authentication announcement", owned[j])
            vals = [bytes(expect_bytes(v, j, "an announced combination", BLOCK)) for v in items]
            self.record_broadcast(step, j, *vals)  # our own too: every party's transcript is the same
            got.append(vals)
        cursor = [0] * n
        out = []
        for a in auths:
            out.append(got[a.owner][cursor[a.owner]])
            cursor[a.owner] += 1
        return out


def unpack_exact(msg: Any, frm: int, count: int, what: str) -> np.ndarray:
    """``count`` bits packed little-endian (``np.packbits``), as uint8 0/1; the padding must be zero."""
    raw = expect_bytes(msg, frm, what, (count + 7) // 8)
    packed = np.frombuffer(raw, dtype=np.uint8)
    bits = np.unpackbits(packed, bitorder="little")
    if np.any(bits[count:]):
        raise ProtocolError(f"party {frm} sent {what} with nonzero padding bits", culprit=frm)
    return bits[:count]
