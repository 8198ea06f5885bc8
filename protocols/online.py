"""The SPDZ online phase: one ``Session`` per computation, at each party.

A session runs one SPMD program. Every party calls the same operations in the same order, so a plain
step counter tags each round identically everywhere. Operations:

* ``input``: the owner broadcasts ``x - r`` for an input mask ``[r]`` only it knows.
* opening (internal): everyone sends its value share to everyone; the opened value goes on the
  to-check list with this party's MAC share. MAC shares never leave the party.
* ``mac_check``: batched SPDZ check. A fresh commit-then-reveal coin toss (never reused) seeds random
  coefficients ``r_j``; each party commits to ``sigma_i = sum_j r_j m_ij - alpha_i sum_j r_j a_j`` and
  to a digest of everything it received by broadcast, then all reveal; accept iff the sigmas sum to
  zero and the digests agree. An adversary who changed an opened value must guess the honest parties'
  key shares to pass, which happens with probability 1/p.
* ``mul``: Beaver multiplication, the whole vector in one round: ``z = c + d*y + e*a`` with ``d = x - a``
  and ``e = y - b`` opened together.
* ``output``: to all parties: check everything opened so far, open, check again, only then return.
  To one party ``j``: open ``x - r`` for a mask known to ``j``, check, and ``j`` adds ``r``.

On any failed check the session calls ``Preprocessing.compromised()`` (the MAC key share is zeroed and
material purged: a failed check may leak the key), forgets its unchecked values and raises
``MacCheckError`` (an ``AbortError``). Nothing that failed a check is ever returned.

Sub-protocols with MACs of their own (the binary domain's ``BitChecker``) ``attach`` their unchecked
state to the session: ``mac_check`` runs their checks too, so every output and ``finish`` is preceded by
them, and a failure there aborts the session like the field check's.

``comparison`` chooses where comparisons, equality tests, bit decompositions and truncations compute
(``protocols.comparison``): ``"field"`` (field random bits, today's default), ``"binary"`` (edaBits, AND
triples and daBits: the preprocessing must be a ``MixedPreprocessing``) or ``"auto"`` (binary when the
preprocessing provides it). ``DEFAULT_COMPARISON`` is the default for sessions that do not say.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import structlog

from .commitments import coin_toss, commit_and_reveal, context_bytes
from .errors import AbortError, MacCheckError, ProtocolError
from .field import FieldError
from .mac_check import combine
from .net import Net, PairChannel, exchange, expect_bytes
from .preprocessing.base import Preprocessing
from .prg import PRG
from .shares import SharedArray

log = structlog.get_logger("spdz.online")

DEFAULT_CHECK_BOUND = 1_000_000
DEFAULT_MAX_ELEMENTS = 1 << 26
DEFAULT_KING_MIN = 1 << 16
"""Openings of at least this many elements go through kings (``Session._open_via_kings``): a third
fewer bytes per party at n = 3 (half as many at large n) for one more round. Below it, every party
sends its share to every other (one round): small openings are bound by latency, large ones by
bandwidth and, over TLS, by encryption. 0 turns it off. Every party of a session must use the same
value (their messages would not match: the session aborts)."""
_MAX_NDIM = 8
COMPARISONS = ("field", "binary", "auto")
DEFAULT_COMPARISON = "field"
"""Where a session's comparisons compute unless it says (``Session(comparison=...)``): see the module
docstring. ``"field"`` keeps every session on the field-only protocols until the offline phase makes
binary material; ``"auto"`` would move every session whose preprocessing has it."""
_MIXED = ("bctx", "and_triples", "dabits", "edabits", "loose_edabits")


def has_binary_material(pre: Any) -> bool:
    """Whether ``pre`` provides ``MixedPreprocessing`` (a wrapper forwards what its inner source has)."""
    return all(getattr(pre, name, None) is not None for name in _MIXED)


class AttachedCheck(Protocol):
    """A sub-protocol's unchecked state that the session's MAC check must also clear."""

    @property
    def pending(self) -> bool: ...

    async def check(self) -> None: ...

    def fail(self) -> None: ...


A = TypeVar("A", bound=AttachedCheck)


class Session:
    """One party's side of one computation. Programs receive it as ``s``."""

    def __init__(
        self,
        net: Net,
        pre: Preprocessing,
        session_id: str,
        *,
        check_bound: int = DEFAULT_CHECK_BOUND,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        king_min: int = DEFAULT_KING_MIN,
        comparison: str | None = None,
    ) -> None:
        self.net = net
        self.pre = pre
        self.ctx = pre.ctx
        self.field = self.ctx.field
        self.party = net.party
        self.n = net.n
        self.session_id = session_id
        self.check_bound = check_bound
        self.max_elements = max_elements
        self.king_min = king_min
        self._step = 0
        self._channels: dict[tuple[int, int], PairChannel] = {}
        self._open_vals: list[np.ndarray] = []
        self._open_macs: list[np.ndarray] = []
        self._unchecked = 0
        self._broadcasts = 0
        self._transcript = hashlib.sha256(b"trio-spdz/transcript/v1" + session_id.encode())
        self.stats = {"mac_checks": 0, "opened": 0, "rounds": 0}
        self._attached: dict[str, AttachedCheck] = {}
        self.privacy: Any = None  # with a declared DP cost (actors.privacy): a dp.allowance.Allowance
        if self.party != self.ctx.party or self.n != self.ctx.n:
            raise ValueError("network and preprocessing disagree on the party id or count")
        self.comparison = DEFAULT_COMPARISON if comparison is None else comparison
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {', '.join(COMPARISONS)}, not {self.comparison!r}")
        if self.comparison == "binary" and not has_binary_material(pre):
            raise ValueError(
                "comparison='binary' needs preprocessing with binary material (MixedPreprocessing: "
                "AND triples, daBits, edaBits); this source has none"
            )

    @property
    def comparison_domain(self) -> str:
        """``"binary"`` or ``"field"``: where this session's comparisons, equality tests and bit
        decompositions compute."""
        if self.comparison == "auto":
            return "binary" if has_binary_material(self.pre) else "field"
        return self.comparison

    @property
    def truncation_domain(self) -> str:
        """Where this session's truncation masks come from: ``"binary"`` (two strict edaBits) only when
        asked for (``comparison="binary"``). ``"auto"`` with binary material gives ``"loose"``: the
        low part ``r'``, whose field value is subtracted and must be exact, of field random bits (a
        strict edaBit's daBits cost about as much at three parties), the high part ``r''``, which only
        needs to be bounded, the field value of ONE loose edaBit (``rounds.loose_high_width``): a
        truncation by ``m`` draws ``m`` field bits instead of ``K + kappa`` (``docs/bits.md``).
        Otherwise ``"field"``: all ``K + kappa`` bits."""
        if self.comparison == "binary":
            return "binary"
        return "loose" if self.comparison == "auto" and has_binary_material(self.pre) else "field"

    def attach(self, key: str, make: Callable[[], A]) -> A:
        """The sub-protocol state filed under ``key``, made by ``make`` on first use. Its ``check()``
        runs with every ``mac_check`` (so before every output), ``finish`` requires it not
        ``pending``, and a failure of the session's checks calls its ``fail()``."""
        sub = self._attached.get(key)
        if sub is None:
            sub = self._attached[key] = make()
        return sub  # type: ignore[return-value]

    @property
    def unchecked(self) -> int:
        """Values opened since the last MAC check (the next ``mac_check`` covers them)."""
        return self._unchecked

    def __repr__(self) -> str:
        return f"<Session {self.session_id} party={self.party}/{self.n} field={self.field.name}>"

    # ------------------------------------------------------------------ plumbing
    def _next_step(self) -> int:
        self._step += 1
        self.stats["rounds"] += 1
        return self._step

    def _ctx(self, *parts: Any) -> bytes:
        return context_bytes(self.session_id, *parts)

    # hooks for sub-protocols (MASCOT) that run inside a session and share its checks
    def next_step(self) -> int:
        """Reserve the next round number; every party must call this in the same order."""
        return self._next_step()

    def pair_channel(self, peer: int, channel: int) -> PairChannel:
        """This session's two-party channel ``channel`` with ``peer`` (one object per id, so the step
        counters continue across every sub-protocol that uses it)."""
        key = (peer, channel)
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = PairChannel(self.net, peer, channel)
        return ch

    def commit_context(self, *parts: Any) -> bytes:
        """A commitment/coin-toss context bound to this session."""
        return self._ctx(*parts)

    def record_opened(self, values: np.ndarray, macs: np.ndarray) -> None:
        """Put a value every party learned (with this party's MAC share of it) on the to-check list."""
        if values.shape != macs.shape:
            raise ValueError("opened values and MAC shares differ in shape")
        self._open_vals.append(values)
        self._open_macs.append(macs)
        self._unchecked += values.shape[1]

    def record_broadcast(self, step: int, frm: int, *parts: bytes) -> None:
        """Add a value that ``frm`` sent to every party at ``step`` to the transcript whose digest the
        next MAC check compares: a party that told different parties different things is caught."""
        self._record_broadcast(step, frm, *parts)

    def _parse_vector(self, msg: Any, frm: int, n: int, what: str) -> np.ndarray:
        data = expect_bytes(msg, frm, what, n * self.field.elem_bytes)
        try:
            return self.field.from_bytes(data, n)
        except FieldError as e:
            raise ProtocolError(f"party {frm} sent an invalid {what}: {e}", culprit=frm) from None

    # ------------------------------------------------------------------ input
    async def input(self, values: Any = None, owner: int = 0) -> SharedArray:
        """Secret-share ``values`` held by ``owner``; every other party passes ``None``."""
        if not 0 <= owner < self.n:
            raise ValueError(f"input owner {owner} is not a party of this session (n = {self.n})")
        f = self.field
        shape_step, corr_step = self._next_step(), self._next_step()
        # Round 1: the owner announces the shape. Every party then asks for its masks at the same
        # point of the program: a pooled source has party 0 allocate them for everyone, so nobody
        # may need a message that depends on its own masks first.
        if self.party == owner:
            if values is None:
                raise ValueError(f"party {owner} owns this input but passed no values")
            arr = f._int_array(values)
            shape = tuple(int(d) for d in arr.shape)
            enc = f.encode(arr.reshape(-1))
            for j in range(self.n):
                if j != owner:
                    await self.net.send(j, shape_step, list(shape))
        else:
            if values is not None:
                raise ValueError(f"party {self.party} passed values for an input owned by party {owner}")
            shape = self._parse_shape(await self.net.recv(owner, shape_step), owner)
        size = math.prod(shape)
        r, r_clear = await self.pre.input_masks(owner, size)
        # Round 2: the owner broadcasts x - r.
        if self.party == owner:
            assert r_clear is not None
            corr = f.sub(enc, r_clear)
            payload = f.to_wire(corr)
            for j in range(self.n):
                if j != owner:
                    await self.net.send(j, corr_step, payload)
        else:
            payload = await self.net.recv(owner, corr_step)
            corr = self._parse_vector(payload, owner, size, "input correction")
        step = corr_step
        self._record_broadcast(step, owner, repr(shape).encode(), payload)
        x = r.add_public_field(corr)
        return x.reshape(shape)

    def _parse_shape(self, raw: Any, frm: int) -> tuple[int, ...]:
        if (
            not isinstance(raw, (list, tuple))
            or len(raw) > _MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in raw)
        ):
            raise ProtocolError(f"party {frm} sent a malformed shape {raw!r}", culprit=frm)
        shape = tuple(raw)
        if math.prod(shape) > self.max_elements:
            raise ProtocolError(
                f"party {frm} announced {math.prod(shape)} elements, above the limit {self.max_elements}",
                culprit=frm,
            )
        return shape

    def _record_broadcast(self, step: int, frm: int, *parts: bytes) -> None:
        t = self._transcript
        t.update(step.to_bytes(8, "big") + frm.to_bytes(4, "big"))
        for p in parts:
            t.update(len(p).to_bytes(8, "big"))
            t.update(p)
        self._broadcasts += 1

    # ------------------------------------------------------------------ opening and checking
    async def _open_raw(self, values: list[np.ndarray], macs: list[np.ndarray]) -> list[np.ndarray]:
        """Open several vectors in one round; record them for the next MAC check. Unchecked!

        ``values`` may be one array holding several vectors side by side (``macs`` then lists the
        pieces); the opened result is split the same way as ``macs``.
        """
        f = self.field
        sizes = [m.shape[1] for m in macs]
        total = sum(sizes)
        mine = values[0] if len(values) == 1 else f.concat(values)
        if mine.shape[1] != total:
            raise ValueError("opened values and MAC shares differ in size")
        if self.n > 2 and self.king_min and total >= self.king_min:
            acc = await self._open_via_kings(mine)
        else:
            step = self._next_step()
            msgs = await exchange(self.net, step, f.to_wire(mine))
            acc = mine
            for j, msg in enumerate(msgs):
                if j != self.party:
                    acc = f.add(acc, self._parse_vector(msg, j, total, "share of an opened value"))
        out, i = [], 0
        for s in sizes:
            out.append(acc[:, i : i + s])
            i += s
        self._open_vals.extend(out)
        self._open_macs.extend(macs)
        self._unchecked += total
        self.stats["opened"] += total
        if self._unchecked >= self.check_bound:
            await self.mac_check()
        return out

    async def _open_via_kings(self, mine: np.ndarray) -> np.ndarray:
        """Open a large vector in two rounds: it is cut into ``n`` ranges, party ``r`` is the king of
        range ``r``; everyone sends its share of range ``r`` to king ``r``, each king adds them up
        and sends the sum of its range to everyone. Each party sends ``2 (n - 1) / n`` of the vector
        instead of ``n - 1`` times all of it. Unchecked like every opening: a king that sends
        different sums to different parties gives them different views of the opened value, and the
        MAC check, which each party runs on its own view, fails (the cheater cannot fix the MAC
        term ``alpha_j * error`` of a party ``j`` without knowing ``alpha_j``)."""
        f, me, n = self.field, self.party, self.n
        total = mine.shape[1]
        cut = [r * total // n for r in range(n + 1)]
        to_king, from_king = self._next_step(), self._next_step()
        for r in range(n):
            if r != me:
                await self.net.send(r, to_king, f.to_wire(mine[:, cut[r] : cut[r + 1]]))
        lo, hi = cut[me], cut[me + 1]
        mine_range = mine[:, lo:hi]
        for j in range(n):
            if j != me:
                share = self._parse_vector(
                    await self.net.recv(j, to_king), j, hi - lo, "share of an opened value"
                )
                mine_range = f.add(mine_range, share)
        payload = f.to_wire(mine_range)
        for j in range(n):
            if j != me:
                await self.net.send(j, from_king, payload)
        acc = np.empty_like(mine)
        acc[:, lo:hi] = mine_range
        for r in range(n):
            if r != me:
                size = cut[r + 1] - cut[r]
                acc[:, cut[r] : cut[r + 1]] = self._parse_vector(
                    await self.net.recv(r, from_king), r, size, "opened value (as king of its range)"
                )
        return acc

    async def open_unchecked(self, xs: list[SharedArray]) -> list[np.ndarray]:
        """Open several arrays in one round, as field vectors, *not yet checked*: they are on the
        to-check list, and nothing derived from them may leave the session before ``mac_check``."""
        f = self.field
        values = [x.value for x in xs]
        return await self._open_raw(
            [values[0] if len(values) == 1 else f.concat(values)], [x.mac for x in xs]
        )

    async def mac_check(self) -> None:
        """Check every value opened since the last check, and broadcast consistency, then every attached
        sub-protocol's (binary openings); abort on failure."""
        await self._field_check()
        for sub in list(self._attached.values()):
            if sub.pending:
                try:
                    await sub.check()
                except AbortError as e:
                    self._fail(e)
                    raise

    async def _field_check(self) -> None:
        if not self._unchecked and not self._broadcasts:
            self._open_vals.clear()  # only empty vectors were opened
            self._open_macs.clear()
            return
        f = self.field
        try:
            steps = (self._next_step(), self._next_step())
            seed = await coin_toss(self.net, steps, self._ctx("mac-check-coin", steps[0]))
            prg = PRG(seed)
            alpha = f.to_ints(self.ctx.alpha)[0]
            sigma = 0
            for a, m in zip(self._open_vals, self._open_macs, strict=True):
                comb_a, comb_m = combine(f, prg, [a, m])
                sigma += comb_m - alpha * comb_a
            sigma %= f.modulus
            digest = self._transcript.copy().digest()
            mine = sigma.to_bytes(f.elem_bytes, "little") + digest
            steps2 = (self._next_step(), self._next_step())
            revealed = await commit_and_reveal(
                self.net, steps2, self._ctx("mac-check-sigma", steps2[0]), mine
            )
            total = 0
            for j, data in enumerate(revealed):
                if len(data) != f.elem_bytes + 32:
                    raise ProtocolError(f"party {j} revealed a malformed MAC-check value", culprit=j)
                s_j = int.from_bytes(data[: f.elem_bytes], "little")
                if s_j >= f.modulus:
                    raise ProtocolError(f"party {j} revealed an out-of-range MAC-check value", culprit=j)
                total += s_j
                if data[f.elem_bytes :] != digest:
                    raise MacCheckError(
                        f"broadcast consistency check failed: party {j} saw different broadcast values",
                        culprit=j,
                    )
            if total % f.modulus:
                raise MacCheckError(
                    "MAC check failed: opened values do not match their MACs (a party deviated)"
                )
        except AbortError as e:
            self._fail(e)
            raise
        self.stats["mac_checks"] += 1
        self._open_vals.clear()
        self._open_macs.clear()
        self._unchecked = 0
        self._broadcasts = 0

    def _fail(self, err: AbortError) -> None:
        log.error("session_check_failed", session=self.session_id, party=self.party, reason=err.reason)
        self._open_vals.clear()
        self._open_macs.clear()
        self._unchecked = 0
        for sub in self._attached.values():
            sub.fail()
        self.pre.compromised()

    # ------------------------------------------------------------------ arithmetic
    async def mul(self, x: SharedArray, y: SharedArray) -> SharedArray:
        """Elementwise product of two secret arrays of the same shape: one round, one triple each."""
        if not isinstance(x, SharedArray) or not isinstance(y, SharedArray):
            raise TypeError("mul takes two SharedArrays; multiply by public values with `*`")
        if x.shape != y.shape:
            if x.size != y.size:
                raise ValueError(f"mul of shapes {x.shape} and {y.shape}")
            y = y.reshape(x.shape)
        f = self.field
        n = x.size
        a, b, c = await self.pre.triples(n)
        de = np.empty((f.words, 2 * n), dtype=np.uint64)  # d and e side by side: one message
        f.sub(x.value, a.value, out=de[:, :n])
        f.sub(y.value, b.value, out=de[:, n:])
        dm, em = f.sub(x.mac, a.mac), f.sub(y.mac, b.mac)
        d, e = await self._open_raw([de], [dm, em])
        zv, zm = f.beaver([c.value, c.mac], d, [y.value, y.mac], e, [a.value, a.mac])
        return SharedArray(self.ctx, zv, zm, x.shape)

    async def dot(self, x: SharedArray, y: SharedArray) -> SharedArray:
        """Inner product of two secret vectors (a 0-d SharedArray)."""
        if x.size != y.size:
            raise ValueError(f"dot of {x.size} and {y.size} elements")
        return (await self.mul(x.flatten(), y.flatten())).sum()

    @staticmethod
    def sum(x: SharedArray) -> SharedArray:
        return x.sum()

    # ------------------------------------------------------------------ outputs
    async def output(self, x: SharedArray, to: int | None = None, dp: Any = None) -> np.ndarray | None:
        """Reveal ``x`` (to all, or to party ``to`` only) after MAC checks; signed integers. With
        ``dp=protocols.dp.DP(...)``, secret noise for that guarantee is added first (``dp.output``)."""
        if dp is not None:
            from .dp.output import add_noise

            x = await add_noise(self, x, dp)
        f = self.field
        if to is None:
            await self.mac_check()
            (vals,) = await self._open_raw([x.value], [x.mac])
            await self.mac_check()
            return f.decode(vals).reshape(x.shape)
        if not 0 <= to < self.n:
            raise ValueError(f"output recipient {to} is not a party of this session (n = {self.n})")
        r, r_clear = await self.pre.input_masks(to, x.size)
        masked = x - r
        (vals,) = await self._open_raw([masked.value], [masked.mac])
        await self.mac_check()
        if self.party != to:
            return None
        assert r_clear is not None
        return f.decode(f.add(vals, r_clear)).reshape(x.shape)

    async def open(self, x: SharedArray) -> np.ndarray:
        """Reveal ``x`` to every party. Like ``output``: values are MAC-checked before they are returned."""
        out = await self.output(x)
        assert out is not None
        return out

    async def finish(self) -> None:
        """End of session: check whatever is still unchecked; a session never ends unchecked."""
        await self.mac_check()
        if self._unchecked or self._open_vals or any(sub.pending for sub in self._attached.values()):
            raise AbortError("session ended with unchecked opened values")
