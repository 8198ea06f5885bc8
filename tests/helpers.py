"""Shared helpers for the tests: cluster runners with deadlines, assertions, and the cheating
wrappers (``Cheat``, ``CheatNet``, ``CheatPre`` and the mutations) that the attack tests install.

Every helper that runs a cluster puts a deadline on it: a protocol bug in this system shows up as a
party waiting forever for a message, and a test must fail on that, not hang. Tests that take the
``autojump_clock`` fixture turn a deadlock into an immediate ``TooSlowError`` (virtual time jumps as
soon as every task is blocked); the others rely on a generous wall-clock deadline.

Import them with ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``); ``conftest``
holds only pytest's hooks and fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

import actors
from actors.engine import Interceptor, Program
from actors.sessions import is_offline
from netsim.adversaries import plain
from protocols.apps.logistic import NewtonConfig, local_fit, spline_of
from protocols.errors import AbortError
from protocols.field import P61, P127, PrimeField
from protocols.intercept import Forwarding
from protocols.net import Net, PairChannel
from protocols.preprocessing.base import Preprocessing
from protocols.shares import SharedArray

N_PARTIES = [2, 3, 5]
MODULI = [P61, P127]
MODULUS_IDS = {P61: "p61", P127: "p127"}
DEADLINE = 60.0


_PREPROCESSING = ["dealer"]  # what the cluster helpers use now (``using``; the ``preprocessing`` fixture)


def preprocessing_kind() -> str:
    """``dealer`` (the default) or ``mascot``: what ``run_cluster`` and ``run_each`` give the parties."""
    return _PREPROCESSING[-1]


@contextmanager
def using(kind: str) -> Iterator[str]:
    """Run the cluster helpers with ``kind`` preprocessing inside the block."""
    if kind not in ("dealer", "mascot"):
        raise ValueError(f"preprocessing is 'dealer' or 'mascot', not {kind!r}")
    _PREPROCESSING.append(kind)
    try:
        yield kind
    finally:
        _PREPROCESSING.pop()


def cluster_options() -> dict[str, Any]:
    """``local_cluster`` keywords for the selected preprocessing (small MASCOT pools: fast set-up)."""
    if preprocessing_kind() == "mascot":
        from actors.offline import Watermarks

        sizes = {k: 256 for k in ("triple", "mask", "square", "bit", "random")}
        marks = Watermarks(triple=(256, 512), mask=(64, 256), batch=sizes)
        return {"preprocessing": "mascot", "watermarks": marks}
    return {"preprocessing": "dealer"}


def mod_id(p: int) -> str:
    return MODULUS_IDS.get(p, str(p))


def half(p: int) -> int:
    """The largest magnitude the field's signed encoding accepts: (p - 1) / 2."""
    return (p - 1) // 2


async def run_cluster(
    n: int,
    modulus: int,
    prog: Program,
    *args: Any,
    per_party: Sequence[Sequence[Any]] | None = None,
    session: str | None = None,
    interceptors: dict[int, Interceptor] | None = None,
    session_options: dict[str, Any] | None = None,
    deadline: float = DEADLINE,
) -> list[Any]:
    """Run ``prog`` at every party of a fresh cluster (``cluster_options``); return the results.

    The failure is raised after the cluster has shut down, so that it is not wrapped in the cluster
    nursery's ExceptionGroup (``test_errors_from_a_cluster_block_are_catchable_as_themselves`` checks
    the cluster itself on that).
    """
    error: BaseException | None = None
    with trio.fail_after(deadline):
        async with actors.local_cluster(
            n,
            modulus=modulus,
            interceptors=interceptors,
            session_options=session_options,
            **cluster_options(),
        ) as c:
            try:
                results = await c.run(prog, *args, per_party=per_party, session=session)
            except Exception as e:
                error = e
    if error is not None:
        raise error
    return results


async def run_each(
    n: int,
    modulus: int,
    prog: Program,
    *args: Any,
    per_party: Sequence[Sequence[Any]] | None = None,
    interceptors: dict[int, Interceptor] | None = None,
    session_options: dict[str, Any] | None = None,
    deadline: float = DEADLINE,
) -> list[Any]:
    """Like ``run_cluster`` but return each party's result or exception (``Cluster.run_each``)."""
    with trio.fail_after(deadline):
        async with actors.local_cluster(
            n,
            modulus=modulus,
            interceptors=interceptors,
            session_options=session_options,
            **cluster_options(),
        ) as c:
            return await c.run_each(prog, *args, per_party=per_party)


def assert_all_aborted(results: Sequence[Any], honest: Sequence[int], what: str = "") -> None:
    """Every honest party raised an ``AbortError`` and none returned a value."""
    for i in honest:
        r = results[i]
        assert isinstance(r, AbortError), (
            f"honest party {i} {'returned' if not isinstance(r, BaseException) else 'raised'} "
            f"{r!r} instead of an AbortError{' (' + what + ')' if what else ''}"
        )


def assert_same(results: Sequence[Any], expected: Any) -> None:
    """Every party's result equals ``expected`` (numpy arrays compared elementwise, shape included)."""
    for i, r in enumerate(results):
        assert_array_eq(r, expected, f"party {i}")


def assert_array_eq(got: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, (tuple, list)) and not isinstance(got, np.ndarray):
        assert isinstance(got, (tuple, list)) and len(got) == len(expected), f"{where}: {got!r}"
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_array_eq(g, e, f"{where}[{k}]")
        return
    if expected is None:
        assert got is None, f"{where}: expected None, got {got!r}"
        return
    g = np.asarray(got)
    e = np.asarray(expected)
    if e.dtype.kind == "f" and isinstance(expected, list):  # big Python ints: keep them exact
        e = np.asarray(expected, dtype=object)
    assert g.shape == e.shape, f"{where}: shape {g.shape} != {e.shape}"
    assert [int(v) for v in g.reshape(-1).tolist()] == [int(v) for v in e.reshape(-1).tolist()], (
        f"{where}: {g!r} != {e!r}"
    )


def pmod_signed(v: int, p: int) -> int:
    """``v`` reduced into the signed range of GF(p)."""
    r = v % p
    return r - p if r > half(p) else r


# ---------------------------------------------------------------------------------------- cheating
Mutation = Callable[[PrimeField, int, Any], Any]  # (field, to, msg) -> msg to send instead


# ---------------------------------------------------------------------------------------- wrappers
def classify(msg: Any) -> str:
    if isinstance(msg, list) and len(msg) == 2:
        if isinstance(msg[0], list):
            return "input"
        if isinstance(msg[0], bytes) and isinstance(msg[1], bytes):
            return "coin-open" if len(msg[1]) == 32 else "sigma-open"
    if isinstance(msg, bytes):
        return "commit" if len(msg) == 32 else "share"
    return "other"


class CheatNet:
    """A ``Net`` that passes everything through except the targeted message, which it rewrites."""

    def __init__(
        self,
        inner: Net,
        fld: PrimeField,
        target: tuple[str, int],
        mutate: Mutation,
        only_to: int | None = None,
        duplicate: bool = False,
    ) -> None:
        self.inner = inner
        self.party = inner.party
        self.n = inner.n
        self.field = fld
        self.target = target
        self.mutate = mutate
        self.only_to = only_to
        self.duplicate = duplicate
        self.steps: dict[str, list[int]] = {}
        self.hits = 0
        self._shape: dict[int, tuple[int, Any]] = {}  # held-back input shape per destination
        self._passed: dict[int, int] = {}  # step of an input shape sent on at once, per destination

    async def send(self, to: int, step: int, msg: Any) -> None:
        msg = plain(msg)
        passed = self._passed.pop(to, None)
        if passed is not None and passed + 1 == step and isinstance(msg, bytes):
            await self.inner.send(to, step, msg)  # the correction of an input that is not the target
            return
        if (
            step < PairChannel.STRIDE
            and isinstance(msg, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in msg)
        ):
            # an input's shape. The targeted input is held back and sent with its correction, so a
            # mutation sees both; any other goes out at once (pooled preprocessing draws its masks
            # between the two messages, in rounds that need the shape to have arrived)
            seen = self.steps.setdefault("input", [])
            index = seen.index(step) if step in seen else len(seen)
            if ("input", index) == self.target:
                self._shape[to] = (step, msg)
                return
            if step not in seen:
                seen.append(step)
            self._passed[to] = step
            await self.inner.send(to, step, msg)
            return
        held = self._shape.pop(to, None)
        if held is not None and held[0] + 1 == step and isinstance(msg, bytes):
            await self._send_input(to, held[0], [held[1], msg])
            return
        if held is not None:
            await self.inner.send(to, held[0], held[1])
        await self._send_one(to, step, msg)

    async def _send_input(self, to: int, step: int, pair: list[Any]) -> None:
        """Send an input's two messages, after the mutation if it is the target."""
        kind = "input"
        seen = self.steps.setdefault(kind, [])
        if step not in seen:
            seen.append(step)
        new = pair
        if (kind, seen.index(step)) == self.target and (self.only_to is None or to == self.only_to):
            self.hits += 1
            new = self.mutate(self.field, to, pair)
            if self.duplicate:
                await self.inner.send(to, step, pair[0])
                await self.inner.send(to, step + 1, pair[1])
        if isinstance(new, list) and len(new) == 2:
            await self.inner.send(to, step, new[0])
            await self.inner.send(to, step + 1, new[1])
        else:  # garbage in place of the pair: it takes the shape's place, the correction follows
            await self.inner.send(to, step, new)
            await self.inner.send(to, step + 1, pair[1])

    async def _send_one(self, to: int, step: int, msg: Any) -> None:
        kind = classify(msg)
        seen = self.steps.setdefault(kind, [])
        if step not in seen:
            seen.append(step)
        if (kind, seen.index(step)) == self.target and (self.only_to is None or to == self.only_to):
            self.hits += 1
            new = self.mutate(self.field, to, msg)
            if self.duplicate:
                await self.inner.send(to, step, msg)
            msg = new
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        return await self.inner.recv(frm, step)


def tamper(sa: SharedArray, delta: int, part: str) -> SharedArray:
    f = sa.ctx.field
    d = f.from_ints([delta] + [0] * (sa.size - 1))
    if part == "value":
        return SharedArray(sa.ctx, f.add(sa.value, d), sa.mac, sa.shape)
    return SharedArray(sa.ctx, sa.value, f.add(sa.mac, d), sa.shape)


class CheatPre(Forwarding):
    """Preprocessing whose ``call``-th batch of ``kind`` has ``delta`` added to one share."""

    def __init__(self, inner: Preprocessing, kind: str, which: int, part: str, delta: int, call: int = 0):
        super().__init__(inner)
        self.kind, self.which, self.part, self.delta, self.call = kind, which, part, delta, call
        self.calls: dict[str, int] = {}
        self.hits = 0

    def _due(self, kind: str) -> bool:
        k = self.calls.get(kind, 0)
        self.calls[kind] = k + 1
        due = kind == self.kind and k == self.call
        self.hits += due
        return due

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        abc = list(await self.inner.triples(n))
        if self._due("triple"):
            abc[self.which] = tamper(abc[self.which], self.delta, self.part)
        return abc[0], abc[1], abc[2]

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        r, clear = await self.inner.input_masks(owner, n)
        if self._due("mask"):
            r = tamper(r, self.delta, self.part)
        return r, clear


@dataclass
class Cheat:
    """The interceptor: wraps the cheater's net and/or preprocessing in every online session (the
    offline service's sessions, named ``mascot/...``, are left alone: test_offline_cheating attacks them)."""

    net: Callable[[Net], Net] | None = None
    pre: Callable[[Preprocessing], Preprocessing] | None = None
    nets: list[Any] = field(default_factory=list)
    pres: list[Any] = field(default_factory=list)

    def wrap_net(self, session: str, net: Net) -> Net:
        if self.net is None or is_offline(session):
            return net
        self.nets.append(self.net(net))
        return self.nets[-1]

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        if self.pre is None:
            return pre
        self.pres.append(self.pre(pre))
        return self.pres[-1]

    @property
    def hits(self) -> int:
        return sum(w.hits for w in self.nets + self.pres)


# ---------------------------------------------------------------------------------------- mutations
def add_delta(delta: int, index: int = 0) -> Mutation:
    def mut(f: PrimeField, to: int, msg: bytes) -> bytes:
        v = f.from_bytes(msg)
        if v.shape[1] and not 0 <= index < v.shape[1]:  # a cheat that would change nothing
            raise AssertionError(f"add_delta: element {index} of a {v.shape[1]}-element message")
        d = f.from_ints([delta if i == index else 0 for i in range(v.shape[1])])
        return f.to_bytes(f.add(v, d))

    return mut


def input_delta(delta: int, to_parties: tuple[int, ...] | None = None) -> Mutation:
    def mut(f: PrimeField, to: int, msg: list[Any]) -> list[Any]:
        if to_parties is not None and to not in to_parties:
            return msg
        return [msg[0], add_delta(delta)(f, to, msg[1])]

    return mut


def replace(value: Any) -> Mutation:
    return lambda f, to, msg: value


def flip(part: int) -> Mutation:
    """Flip the last byte of a commitment opening's nonce (0) or data (1)."""

    def mut(f: PrimeField, to: int, msg: list[bytes]) -> list[bytes]:
        out = list(msg)
        out[part] = out[part][:-1] + bytes([out[part][-1] ^ 1])
        return out

    return mut


def noop(f: PrimeField, to: int, msg: Any) -> Any:
    return msg


def non_canonical(f: PrimeField, to: int, msg: bytes) -> bytes:
    """Element 0 replaced by p itself: the right length, but not a canonical field element."""
    v = np.array(f.from_bytes(msg))
    if f.words == 1:
        v[0, 0] = np.uint64(f.modulus)
    else:
        v[0, 0], v[1, 0] = np.uint64(2**64 - 1), np.uint64(2**63 - 1)
    return v.tobytes()


async def refusals(calls: Sequence[Callable[[], Any]], cut: str = ",") -> list[str]:
    """Await each call in turn: ``"accepted"``, or the start of its ``ValueError``/``TypeError`` message
    (up to the first ``cut``): what a misuse test compares at every party."""
    out = []
    for call in calls:
        try:
            await call()
            out.append("accepted")
        except (ValueError, TypeError) as e:
            msg = str(e)
            for c in cut:
                msg = msg.split(c)[0]
            out.append(msg)
    return out


async def assert_share_cheats_caught(
    n: int,
    modulus: int,
    prog: Program,
    per_party: Sequence[Sequence[Any]],
    cases: Sequence[tuple[tuple[str, int], int, Mutation]],
    what: str,
) -> None:
    """For each ``(target, cheater, mutation)``: party ``cheater`` applies ``mutation`` to its
    ``target`` message (``CheatNet``). The cheat must fire; ``noop`` must leave every party's result
    alone, any other mutation must make every party end in an ``AbortError`` (every honest one
    aborted, ``what`` naming the setting)."""
    from protocols.field import get_field

    for target, cheater, mutation in cases:
        cheat = Cheat(net=lambda net, t=target, m=mutation: CheatNet(net, get_field(modulus), t, m))
        res = await run_each(n, modulus, prog, per_party=per_party, interceptors={cheater: cheat})
        assert cheat.hits, "the cheat never fired: the test would prove nothing"
        if mutation is noop:
            assert not any(isinstance(r, BaseException) for r in res), res
            continue
        assert_all_aborted(res, [i for i in range(n) if i != cheater], what)
        assert all(isinstance(r, AbortError) for r in res)


def plain_bohning(
    x: np.ndarray, y: np.ndarray, cfg: NewtonConfig, parts: Sequence[tuple[np.ndarray, np.ndarray]] = ()
) -> np.ndarray:
    """Böhning's iteration (``protocols.apps.logistic``) in float64 on standardized ``x``: ``[w; b]``.
    With ``cfg.warm_start`` it starts, as the MPC does, from ``B^-1 sum_j B_j w_j`` over the parties'
    rows ``parts`` (their union is ``x``, ``y``), with no momentum into its first row pass."""
    n, d = x.shape
    xa = np.column_stack([x, np.ones(n)])
    pen = np.asarray([1.0 / cfg.C] * d + [0.0])
    h_inv = np.linalg.inv(xa.T @ xa / 4 + np.diag(pen))
    sig = spline_of(cfg.sigmoid) or (lambda z: 1.0 / (1.0 + np.exp(-z)))
    w = prev = np.zeros(d + 1)
    first = 0
    if cfg.warm_start:
        if not parts:
            raise ValueError("a warm start needs the parties' rows")
        acc = np.zeros(d + 1)
        for xj, yj in parts:
            xja = np.column_stack([xj, np.ones(len(xj))])
            share = pen * len(xj) / n
            wj = np.clip(local_fit(xja, yj, share), -(2.0**cfg.coef_bits) + 1, 2.0**cfg.coef_bits - 1)
            acc += (xja.T @ xja / 4 + np.diag(share)) @ wj
        w = prev = h_inv @ acc
        first = 1
    for it in range(first, cfg.iterations):
        k = it - first
        at = w + k / (k + 3) * (w - prev) if cfg.nesterov else w
        prev, w = w, at + h_inv @ (xa.T @ (y - sig(xa @ at)) - pen * at)
    return w
