"""Chou-Orlandi base OT (``protocols.ot.base``): correctness, and rejection of every bad group element.

A cheating peer runs the honest code behind ``Tamper``, an interceptor whose net rewrites the k-th
message the cheater sends on the OT channel; the honest peer must raise an ``AbortError`` naming it.
Messages on a ``PairChannel`` use steps ``channel * 2^40 + k``, which is how ``Tamper`` finds them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import trio
from nacl import bindings as sodium

import actors
from protocols.commitments import context_bytes
from protocols.errors import AbortError, ProtocolError
from protocols.intercept import PassThrough
from protocols.net import Net, PairChannel
from protocols.ot.base import POINT_BYTES, base_ot_recv, base_ot_send

CHANNEL = 3
DEADLINE = 30.0

IDENTITY = bytes.fromhex("01" + "00" * 31)
ORDER_2 = bytes.fromhex("ec" + "ff" * 30 + "7f")
ORDER_4 = bytes(32)
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
NON_CANONICAL_Y = bytes.fromhex("ee" + "ff" * 30 + "7f")  # y = p + 1
NON_CANONICAL_SIGN = bytes.fromhex("01" + "00" * 30 + "80")  # x = 0 with the sign bit set
OFF_CURVE = bytes.fromhex("02" + "00" * 31)


def mixed_order_point() -> bytes:
    """A curve point with a prime-order part and an order-8 part: on the curve, outside the subgroup."""
    scalar = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    p = sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)
    return sodium.crypto_core_ed25519_add(p, ORDER_8)


class TamperNet:
    """Passes messages through, except the ``index``-th one sent on ``channel``, which ``mutate`` rewrites."""

    def __init__(
        self,
        inner: Net,
        channel: int,
        index: int,
        mutate: Callable[[Any], Any],
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.inner = inner
        self.before = before
        self.party = inner.party
        self.n = inner.n
        self.target = channel * PairChannel.STRIDE + index
        self.mutate = mutate
        self.hits = 0

    async def send(self, to: int, step: int, msg: Any) -> None:
        if step == self.target:
            if self.before is not None:
                await self.before()
            self.hits += 1
            msg = self.mutate(msg)
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        return await self.inner.recv(frm, step)


class Tamper(PassThrough):
    """An interceptor installing ``TamperNet`` on every session of one party."""

    def __init__(
        self,
        index: int,
        mutate: Callable[[Any], Any],
        channel: int = CHANNEL,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``before`` is awaited just before the rewrite (e.g. to wait for what the test must know)."""
        self.index = index
        self.mutate = mutate
        self.channel = channel
        self.before = before
        self.nets: list[TamperNet] = []

    def wrap_net(self, session: str, net: Net) -> Net:
        tn = TamperNet(net, self.channel, self.index, self.mutate, self.before)
        self.nets.append(tn)
        return tn

    @property
    def hits(self) -> int:
        return sum(n.hits for n in self.nets)


async def run_pair(prog: Any, *args: Any, interceptors: dict[int, Any] | None = None) -> list[Any]:
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(2, preprocessing="dealer", interceptors=interceptors) as c:
            return await c.run_each(prog, *args)


async def ot_prog(s: Any, count: int, choices: np.ndarray) -> Any:
    """Party 0 sends, party 1 receives."""
    ch = PairChannel(s.net, 1 - s.party, CHANNEL)
    ctx = context_bytes(s.session_id, "base-ot-test")
    if s.party == 0:
        return await base_ot_send(ch, count, context=ctx)
    return await base_ot_recv(ch, choices, context=ctx)


@pytest.mark.parametrize("count", [1, 5, 128])
async def test_receiver_gets_the_chosen_key_only(count: int) -> None:
    choices = np.frombuffer(os.urandom(count), dtype=np.uint8) & 1
    (k0, k1), kc = await run_pair(ot_prog, count, choices)
    assert k0.shape == k1.shape == kc.shape == (count, 16)
    assert k0.dtype == k1.dtype == kc.dtype == np.uint8
    for i, c in enumerate(choices):
        chosen, other = (k1[i], k0[i]) if c else (k0[i], k1[i])
        assert np.array_equal(kc[i], chosen), f"OT {i}: receiver key is not k_{c}"
        assert not np.array_equal(kc[i], other), f"OT {i}: receiver also has k_{1 - c}"
    assert len({bytes(k) for k in np.concatenate([k0, k1])}) == 2 * count, "keys repeat"


async def test_choices_as_bools_and_fresh_keys_per_run() -> None:
    choices = np.array([True, False, True, True])
    (k0a, k1a), kca = await run_pair(ot_prog, 4, choices)
    (k0b, _), _ = await run_pair(ot_prog, 4, choices)
    assert np.array_equal(kca, np.where(choices[:, None], k1a, k0a))
    assert not np.array_equal(k0a, k0b)


async def test_receiver_rejects_non_bit_choices() -> None:
    results = await run_pair(ot_prog, 3, np.array([0, 2, 1]))
    assert isinstance(results[1], ValueError)


def replace_point(i: int, bad: bytes) -> Callable[[Any], Any]:
    def mutate(msg: Any) -> Any:
        raw = bytearray(bytes(msg))
        raw[i * POINT_BYTES : (i + 1) * POINT_BYTES] = bad
        return bytes(raw)

    return mutate


BAD_POINTS = {
    "identity": IDENTITY,
    "order-2": ORDER_2,
    "order-4": ORDER_4,
    "order-8": ORDER_8,
    "non-canonical-y": NON_CANONICAL_Y,
    "non-canonical-sign": NON_CANONICAL_SIGN,
    "off-curve": OFF_CURVE,
    "mixed-order": None,
}


@pytest.mark.parametrize("name", sorted(BAD_POINTS))
async def test_sender_rejects_a_bad_receiver_point(name: str) -> None:
    bad = BAD_POINTS[name] if BAD_POINTS[name] is not None else mixed_order_point()
    cheat = Tamper(0, replace_point(7, bad))
    results = await run_pair(ot_prog, 16, np.ones(16, dtype=np.uint8), interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], AbortError), results[0]
    assert results[0].culprit == 1


@pytest.mark.parametrize("name", sorted(BAD_POINTS))
async def test_receiver_rejects_a_bad_sender_point(name: str) -> None:
    bad = BAD_POINTS[name] if BAD_POINTS[name] is not None else mixed_order_point()
    cheat = Tamper(0, lambda msg: bad)
    results = await run_pair(ot_prog, 16, np.ones(16, dtype=np.uint8), interceptors={0: cheat})
    assert isinstance(results[1], AbortError), results[1]
    assert results[1].culprit == 0


async def test_sender_rejects_its_own_point_echoed() -> None:
    """B_i = A would make B_i - A the identity."""
    echoed: dict[str, bytes] = {}

    class Echo(Tamper):
        def wrap_net(self, session: str, net: Net) -> Net:
            inner = super().wrap_net(session, net)
            recv = inner.recv

            async def spy(frm: int, step: int) -> Any:
                msg = await recv(frm, step)
                if step == CHANNEL * PairChannel.STRIDE:
                    echoed["A"] = bytes(msg)
                return msg

            inner.recv = spy  # type: ignore[method-assign]
            return inner

    cheat = Echo(0, lambda msg: echoed["A"] * 4)
    results = await run_pair(ot_prog, 4, np.zeros(4, dtype=np.uint8), interceptors={1: cheat})
    assert isinstance(results[0], AbortError) and results[0].culprit == 1, results[0]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda msg: bytes(msg)[:-1], id="short"),
        pytest.param(lambda msg: bytes(msg) + b"\0", id="long"),
        pytest.param(lambda msg: [bytes(msg)], id="list"),
        pytest.param(lambda msg: 12345, id="int"),
        pytest.param(lambda msg: None, id="none"),
    ],
)
async def test_malformed_messages_raise_protocol_errors(mutate: Callable[[Any], Any]) -> None:
    results = await run_pair(ot_prog, 8, np.ones(8, dtype=np.uint8), interceptors={1: Tamper(0, mutate)})
    assert isinstance(results[0], ProtocolError), results[0]
    results = await run_pair(ot_prog, 8, np.ones(8, dtype=np.uint8), interceptors={0: Tamper(0, mutate)})
    assert isinstance(results[1], ProtocolError), results[1]
