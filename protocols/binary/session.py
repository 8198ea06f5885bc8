"""The binary side of one ``Session``: authenticated bits, AND triples, openings and their checks.

``BitSession(s, party)`` binds a set-up ``BinaryParty`` (key share and OT ends) to one session (its
network, round numbers, coin tosses) and holds the session's unchecked binary state in a
``BitChecker``. Every party calls the same methods in the same order, as with ``Session``.

Generators (``random_bits``, ``input``, ``and_triples``) return only material whose checks passed.
``open_unchecked`` puts what it opens on the to-check list; ``output`` checks before and after
opening, like ``Session.output``; ``finish`` checks whatever is left, and a program must call it
before the session ends (``Session.finish`` does not know about the binary state). Any
``AbortError`` on the way (a failed check, a malformed message, a failed KOS check) retires the
``BinaryParty``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..commitments import coin_toss
from ..errors import AbortError, ProtocolError
from .auth import cot_batch, random_bits
from .bits import AuthBits, BinaryContext, as_bits
from .check import DEFAULT_CHECK_BOUND, BitChecker
from .triples import bucket_size, check_count, combine, leaky_triples, permutation

if TYPE_CHECKING:
    from ..online import Session
    from .party import BinaryParty

T = TypeVar("T")
LEAKY_SLICE = 1 << 17
"""Leaky triples made per ``leaky_triples`` call: bucketing still spans the whole batch, but each
slice's arrays (a few MB per peer) stay in cache and are reused from malloc's heap instead of being
mapped and faulted in afresh. Measured (``benchmarks/binary_bench.py``, 2^19 triples, B = 3): 2^17
doubles the rate of one call for the whole batch at n = 2 and 3; 2^16 and 2^18 are 10-30% slower."""
MAX_BITS = 1 << 26
"""The most bits one ``input`` may announce (a bound on what a peer can make us allocate)."""


class BitSession:
    def __init__(self, s: Session, party: BinaryParty, *, check_bound: int = DEFAULT_CHECK_BOUND) -> None:
        party.check_usable(s)
        self.s = s
        self.party = party
        self.checker = BitChecker(s, party.ctx, party.retire, check_bound)

    def __repr__(self) -> str:
        return f"<BitSession {self.s.session_id} party={self.party.party}/{self.party.n}>"

    @property
    def ctx(self) -> BinaryContext:
        return self.party.ctx

    @property
    def unchecked(self) -> int:
        return self.checker.unchecked

    async def _guard(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self.party.check_usable(self.s)
        try:
            return await fn(*args)
        except AbortError:
            self.checker.fail()  # retires the key: the OT ends are out of step, the key may be known
            raise

    # ------------------------------------------------------------------ generators
    async def random_bits(self, count: int) -> AuthBits:
        """``[[r]]`` for ``count`` uniform bits nobody knows: the XOR of every party's own random
        authenticated bits, after the consistency check."""
        check_count(count)
        if count == 0:
            return AuthBits.empty(self.ctx)
        return await self._guard(self._random_bits, count)

    async def _random_bits(self, count: int) -> AuthBits:
        s, n = self.s, self.s.n
        mine = random_bits(count)
        batch = await cot_batch(s, self.party, mine, [count] * n)
        for owner in range(n):
            self.checker.add_auth(batch.pending(owner))
        await self.checker.check()
        macs = batch.component(0)[:count] ^ batch.component(1)[:count]
        for owner in range(2, n):
            macs ^= batch.component(owner)[:count]
        return AuthBits(self.ctx, mine, macs)

    async def input(self, values: Any = None, owner: int = 0) -> AuthBits:
        """Authenticate bits held by ``owner`` (the others pass ``None``): the owner's share is the
        bits, the others' shares are 0. The owner announces the count first."""
        s = self.s
        if not 0 <= owner < s.n:
            raise ValueError(f"input owner {owner} is not a party of this session (n = {s.n})")
        if values is None and s.party == owner:
            raise ValueError(f"party {owner} owns this input but passed no values")
        if values is not None and s.party != owner:
            raise ValueError(f"party {s.party} passed values for an input owned by party {owner}")
        bits = as_bits(values, what="input bits") if values is not None else None
        return await self._guard(self._input, bits, owner)

    async def _input(self, bits: np.ndarray | None, owner: int) -> AuthBits:
        s, me, n = self.s, self.s.party, self.s.n
        step = s.next_step()
        if me == owner:
            assert bits is not None
            count = bits.size
            for j in range(n):
                if j != me:
                    await s.net.send(j, step, count)
        else:
            count = await s.net.recv(owner, step)
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_BITS:
                raise ProtocolError(
                    f"party {owner} announced a malformed input size {count!r}", culprit=owner
                )
        self.checker.record_broadcast(step, owner, count.to_bytes(8, "big"))
        if count == 0:
            return AuthBits.empty(self.ctx)
        sizes = [0] * n
        sizes[owner] = count
        batch = await cot_batch(s, self.party, bits if me == owner else None, sizes)
        self.checker.add_auth(batch.pending(owner))
        await self.checker.check()
        share = bits.copy() if me == owner else np.zeros(count, dtype=np.uint8)
        assert share is not None
        return AuthBits(self.ctx, share, batch.component(owner)[:count].copy())

    async def and_triples(self, count: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        """``count`` AND triples ``([[x]], [[y]], [[z]])``, ``z = x AND y``, secure against a
        malicious majority at statistical security 40 (``triples.py``)."""
        check_count(count)
        if count == 0:
            e = AuthBits.empty(self.ctx)
            return e, e, e
        return await self._guard(self._and_triples, count)

    async def _and_triples(self, count: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        s = self.s
        bucket = bucket_size(count)
        total = count * bucket
        parts = []  # made in slices: arrays of a few MB stay in cache and in malloc's heap
        for lo in range(0, total, LEAKY_SLICE):
            parts.append(await leaky_triples(self, min(LEAKY_SLICE, total - lo)))
            # the slice's authentications and leaky-AND relation, checked now: what the check keeps
            # per triple (every owner's MAC rows, the relation's sums) is three times the triple
            await self.checker.check()
        # one component at a time, each slice's copy dropped as it is joined (peak: the triples and
        # one component's copy, not twice the triples)
        cols = [[p[i] for p in parts] for i in range(3)]
        del parts
        joined = []
        for col in cols:
            joined.append(AuthBits.concat(col))
            col.clear()
        x, y, z = joined
        del joined, cols
        steps = (s.next_step(), s.next_step())
        seed = await coin_toss(s.net, steps, s.commit_context("binary-buckets", steps[0]))
        perm = permutation(seed, total)
        x = x[perm]  # each gathered in turn, the unpermuted one dropped at once
        y = y[perm]
        z = z[perm]
        del perm
        out = await combine(self, x, y, z, count, bucket)
        await self.checker.check()  # the openings of the bucketing
        return out

    async def and_(
        self, x: AuthBits, y: AuthBits, triples: tuple[AuthBits, AuthBits, AuthBits] | None = None
    ) -> AuthBits:
        """``x AND y`` elementwise with one AND triple per bit (generated here unless given): open
        ``d = x + a`` and ``e = y + b`` in one round, then ``z = c + d b + e a + d e`` (the public
        ``d e`` added as a constant). The openings are unchecked, like ``Session.mul``'s."""
        if x.size != y.size:
            raise ValueError(f"AND of {x.size} and {y.size} bits")
        a, b, c = triples if triples is not None else await self.and_triples(x.size)
        if not a.size == b.size == c.size == x.size:
            raise ValueError(f"{a.size} triples for an AND of {x.size} bits")
        d, e = await self.open_unchecked([x ^ a, y ^ b])
        return c ^ b.and_public(d) ^ a.and_public(e) ^ (d & e)

    # ------------------------------------------------------------------ opening
    async def open_unchecked(self, xs: Sequence[AuthBits]) -> list[np.ndarray]:
        """Open several vectors in one round, *unchecked*: nothing derived from them may leave the
        session before ``check``."""
        return await self._guard(self.checker.open, xs)

    async def check(self) -> None:
        """Check every opening (and anything else pending) since the last check."""
        await self._guard(self.checker.check)

    async def output(self, x: AuthBits) -> np.ndarray:
        """Reveal ``x`` to every party after MAC checks, as uint8 0/1."""
        await self.check()
        (bits,) = await self.open_unchecked([x])
        await self.check()
        return bits.copy()

    async def finish(self) -> None:
        """End of the binary part of a session: nothing may stay unchecked."""
        if self.checker.pending:
            await self.check()
