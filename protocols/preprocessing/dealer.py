"""INSECURE trusted-dealer preprocessing, for online-phase tests and benchmarks only.

Every party derives the *whole* of each batch (all parties' shares, and the global MAC key) from a
seed they all know, then keeps its own shares. That needs no communication and works across processes,
and it is exactly as insecure as it sounds: whoever knows the seed knows every secret. Its name says so,
``insecure`` is True, and the daemon refuses it unless its config says ``insecure_dealer = true``.

Material is derived per (seed, session id, kind, request counter), so concurrent sessions never share
triples and a session's k-th request gets the same batch at every party.

It also deals the binary-domain material of ``MixedPreprocessing`` (``bctx``, ``and_triples``,
``dabits``, ``edabits``; ``protocols.binary``): the binary MAC key shares ``Delta_i`` come from the
same seed, and the bits are XOR-shared with GF(2^128) MAC shares under ``Delta = XOR_i Delta_i``, so the
online protocols on them (``protocols.binary.circuits``, ``protocols.comparison_binary``) can be tested
and benchmarked without the offline protocols that will make them. Just as INSECURE.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import structlog

from ..binary.bits import U64, AuthBits, BinaryContext, times_delta
from ..field import PrimeField
from ..prg import PRG
from ..shares import ShareContext, SharedArray

log = structlog.get_logger("spdz.dealer")


class InsecureDealer:
    """A per-party handle on a shared-seed dealer. Same ``seed`` at every party of a cluster."""

    insecure = True

    def __init__(self, field: PrimeField, n: int, party: int, seed: bytes | None = None) -> None:
        self.field = field
        self.n = n
        self.party = party
        self.seed = seed if seed is not None else os.urandom(32)

    def for_session(self, session_id: str, net: object = None) -> DealerSession:
        log.warning("insecure_dealer_in_use", session=session_id, party=self.party)
        return DealerSession(self, session_id)


class DealerSession:
    """One session's view of the dealer (implements ``Preprocessing`` and ``MixedPreprocessing``)."""

    def __init__(self, dealer: InsecureDealer, session_id: str) -> None:
        self._d = dealer
        self._sid = session_id.encode()
        self._counters: dict[str, int] = {}
        f = dealer.field
        keys = f.random(dealer.n, self._prg("mac-key", 0))
        self._alphas = keys  # every party's key share: the dealer knows them all (that is the point)
        self._alpha_total = f.from_ints([f.sum(keys)])
        self.ctx = ShareContext(f, dealer.party, dealer.n, keys[:, dealer.party : dealer.party + 1].copy())
        deltas = self._prg("binary-key", 0).random_words((dealer.n, 2))  # every Delta_i, as above
        self._delta_total = np.bitwise_xor.reduce(deltas, axis=0)
        self.bctx = BinaryContext(dealer.party, dealer.n, deltas[dealer.party].copy())

    def _prg(self, kind: str, counter: int) -> PRG:
        h = hashlib.sha256(b"trio-spdz/insecure-dealer/v1")
        for part in (self._d.seed, self._sid, kind.encode(), counter.to_bytes(8, "big")):
            h.update(len(part).to_bytes(4, "big") + part)
        return PRG(h.digest())

    def _next(self, kind: str) -> PRG:
        c = self._counters.get(kind, 0)
        self._counters[kind] = c + 1
        return self._prg(kind, c)

    def _share(self, values: np.ndarray, prg: PRG) -> SharedArray:
        """Split clear ``values`` into authenticated shares for all parties; return ours."""
        f, n, me = self._d.field, self._d.n, self._d.party
        size = values.shape[1]
        macs = f.mul(values, self._alpha_total)
        mine_v = mine_m = None
        acc_v, acc_m = f.zeros(size), f.zeros(size)
        for j in range(n - 1):
            rv, rm = f.random(size, prg), f.random(size, prg)
            acc_v, acc_m = f.add(acc_v, rv), f.add(acc_m, rm)
            if j == me:
                mine_v, mine_m = rv, rm
        if mine_v is None:  # the last party takes the remainder
            mine_v, mine_m = f.sub(values, acc_v), f.sub(macs, acc_m)
        return SharedArray(self.ctx, mine_v, mine_m)

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        f, prg = self._d.field, self._next("triple")
        a, b = f.random(n, prg), f.random(n, prg)
        return self._share(a, prg), self._share(b, prg), self._share(f.mul(a, b), prg)

    async def squares(self, n: int) -> tuple[SharedArray, SharedArray]:
        f, prg = self._d.field, self._next("square")
        a = f.random(n, prg)
        return self._share(a, prg), self._share(f.mul(a, a), prg)

    async def bits(self, n: int) -> SharedArray:
        f, prg = self._d.field, self._next("bit")
        b = f.from_ints(np.frombuffer(prg.random_bytes(n), dtype=np.uint8) & 1) if n else f.zeros(0)
        return self._share(b, prg)

    async def randoms(self, n: int) -> SharedArray:
        f, prg = self._d.field, self._next("random")
        return self._share(f.random(n, prg), prg)

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        f, prg = self._d.field, self._next(f"mask-{owner}")
        r = f.random(n, prg)
        return self._share(r, prg), (r if owner == self._d.party else None)

    async def owned_triples(
        self, owner: int, n: int, width: int
    ) -> tuple[SharedArray, SharedArray, SharedArray]:
        """``n`` groups of ``width`` products ``a_g b`` (``protocols.mascot.owned``); here every party
        could know everything (the dealer is INSECURE), so ``owner`` only names the pool."""
        from ..mascot.owned import MAX_WIDTH

        f = self._d.field
        if not 0 <= owner < self._d.n or n < 0 or not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"owned triples of party {owner}: {n} groups of width {width}")
        prg = self._next(f"owned-{owner}-{width}")
        a, b = f.random(n * width, prg), f.random(n, prg)
        c = f.mul(a, np.repeat(b, width, axis=1))
        return self._share(a, prg), self._share(b, prg), self._share(c, prg)

    async def ranged_randoms(self, n: int, width: int) -> SharedArray:
        """``n`` sums of one uniform ``width``-bit random per party (``protocols.mascot.ranged``)."""
        from ..mascot.ranged import max_width, uniform_below_pow2

        f = self._d.field
        if n < 0 or not 1 <= width <= max_width(f, self._d.n):
            raise ValueError(f"ranged randoms: {n} of {width} bits")
        prg = self._next(f"ranged-{width}")
        total = f.zeros(n)
        for _ in range(self._d.n):
            total = f.add(total, uniform_below_pow2(prg, n, width, f.words))
        return self._share(total, prg)

    # ------------------------------------------------------------------ binary material
    def _share_bits(self, bits: np.ndarray, prg: PRG) -> AuthBits:
        """XOR-share clear 0/1 ``bits`` with MAC shares under ``Delta``; return ours."""
        n, me, size = self._d.n, self._d.party, bits.size
        acc_b = np.zeros(size, dtype=np.uint8)
        acc_m = np.zeros((size, 2), dtype=U64)
        mine: tuple[np.ndarray, np.ndarray] | None = None
        for j in range(n - 1):
            rb = _random_bits(prg, size)
            rm = prg.random_words((size, 2))
            acc_b ^= rb
            acc_m ^= rm
            if j == me:
                mine = rb, rm
        if mine is None:  # the last party takes the remainder
            mine = bits ^ acc_b, times_delta(bits, self._delta_total) ^ acc_m
        return AuthBits(self.bctx, mine[0], mine[1])

    async def and_triples(self, n: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        prg = self._next("and-triple")
        a, b = _random_bits(prg, n), _random_bits(prg, n)
        return self._share_bits(a, prg), self._share_bits(b, prg), self._share_bits(a & b, prg)

    async def dabits(self, n: int) -> tuple[SharedArray, AuthBits]:
        f, prg = self._d.field, self._next("dabit")
        b = _random_bits(prg, n)
        return self._share(f.from_ints(b) if n else f.zeros(0), prg), self._share_bits(b, prg)

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        f = self._d.field
        if not 1 <= k < f.bits:
            raise ValueError(f"edaBits of {k} bits do not fit {f.name}: 1 <= k < {f.bits}")
        prg = self._next("edabit")
        bits = _random_bits(prg, n * k)  # element by element, least significant bit first
        return self._share(compose_le(bits, n, k, f.words), prg), self._share_bits(bits, prg)

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        from ..binary.edabits import HIDE

        f = self._d.field
        if not 1 <= k or k + HIDE >= f.bits:
            raise ValueError(f"loose edaBits of {k} bits do not fit {f.name}: 1 <= k < {f.bits - HIDE}")
        prg = self._next("loose-edabit")
        width = k + HIDE
        bits = _random_bits(prg, n * width)  # R uniform in [0, 2^(k + HIDE)), element by element
        low = bits.reshape(n, width)[:, :k].reshape(-1)
        return self._share(compose_le(bits, n, width, f.words), prg), self._share_bits(low, prg)

    def compromised(self) -> None:
        self._counters.clear()
        self.ctx.alpha[...] = 0
        self.bctx.delta[...] = 0


def _random_bits(prg: PRG, n: int) -> np.ndarray:
    return np.frombuffer(prg.random_bytes(n), dtype=np.uint8) & np.uint8(1) if n else np.zeros(0, np.uint8)


def compose_le(bits: np.ndarray, n: int, k: int, words: int) -> np.ndarray:
    """``sum_j 2^j bits[e k + j]`` for each of ``n`` elements, as a ``(words, n)`` field vector (the
    sums are below ``2^k``, which the caller keeps below the modulus)."""
    padded = np.zeros((n, 64 * words), dtype=np.uint8)
    padded[:, :k] = bits.reshape(n, k)
    packed = np.packbits(padded, axis=1, bitorder="little")  # (n, 8 words) little-endian bytes
    return np.ascontiguousarray(packed.view("<u8").astype(U64).T)
