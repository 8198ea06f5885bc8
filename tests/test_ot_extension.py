"""The OT-extension interface and registry (``protocols.ot.extension``), and MASCOT built through them.

Every registered extension is checked against the interface (method names, parameters, coroutines)
and run through the interface's methods alone between two parties, with the outputs compared with the
plaintext OT relation. MASCOT is then run with an extension given by name and by a pair of classes;
its triples are checked as in ``test_mascot``.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import pytest
from test_mascot import alphas_of, raise_any, reconstruct, run_with, setup_prog, triples_prog
from test_ot_base import run_pair

from protocols.commitments import context_bytes
from protocols.field import P61, get_field
from protocols.mascot import MascotParty
from protocols.net import PairChannel
from protocols.ot import KOSReceiver, KOSSender
from protocols.ot.extension import (
    DEFAULT,
    EXTENSIONS,
    OTExtensionReceiver,
    OTExtensionSender,
    lookup,
    register,
)
from protocols.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender

CHANNEL = 5


def random_bits(n: int) -> np.ndarray:
    return (np.frombuffer(os.urandom(n), dtype=np.uint8) & 1).astype(bool)


# ------------------------------------------------------------------------------------ registry
def test_kos_and_softspoken_are_registered_and_softspoken_is_the_default() -> None:
    assert DEFAULT == "softspoken"
    assert lookup("kos") == (KOSSender, KOSReceiver)
    assert lookup("softspoken") == (SoftSpokenSender, SoftSpokenReceiver)
    assert MascotParty(get_field(P61), 0, 2).ot_ends == (SoftSpokenSender, SoftSpokenReceiver)


@pytest.mark.parametrize("name", ["SoftSpoken", "KOS", "", None])
def test_an_unknown_name_is_refused_naming_the_known_ones(name: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown OT extension .*; known: 'kos', 'softspoken'"):
        lookup(name)


def test_mascot_party_refuses_an_unknown_extension_before_any_setup() -> None:
    with pytest.raises(ValueError, match=r"unknown OT extension 'iknp'; known: 'kos'"):
        MascotParty(get_field(P61), 0, 2, ot_extension="iknp")


def test_register_adds_a_name_once() -> None:
    try:
        register("kos-again", KOSSender, KOSReceiver)
        assert lookup("kos-again") == (KOSSender, KOSReceiver)
        with pytest.raises(ValueError, match="already registered"):
            register("kos-again", KOSSender, KOSReceiver)
        with pytest.raises(ValueError, match="already registered"):
            register("kos", KOSSender, KOSReceiver)
    finally:
        EXTENSIONS.pop("kos-again", None)
    assert lookup("kos") == (KOSSender, KOSReceiver)


# ------------------------------------------------------------------------------------ interface
def interface_methods(proto: type) -> list[str]:
    return sorted(n for n, v in vars(proto).items() if not n.startswith("_") and inspect.isfunction(v))


def test_the_interface_is_what_mascot_calls() -> None:
    """Exactly setup and extend on both ends (a new method here is a new duty for every extension)."""
    assert interface_methods(OTExtensionSender) == ["extend", "setup"]
    assert interface_methods(OTExtensionReceiver) == ["extend", "setup"]


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
def test_registered_classes_satisfy_the_interface(name: str) -> None:
    """isinstance (``runtime_checkable``: the methods exist), and each method is a coroutine with
    the interface's parameters, so the sender's ``extend(ch, m)`` cannot be confused with the
    receiver's ``extend(ch, choices)``."""
    for cls, proto in zip(lookup(name), (OTExtensionSender, OTExtensionReceiver), strict=True):
        end = cls(b"ctx")
        assert isinstance(end, proto), f"{name}: {cls} is not an {proto.__name__}"
        for method in interface_methods(proto):
            impl = getattr(cls, method)
            assert inspect.iscoroutinefunction(impl), f"{cls.__name__}.{method} is not async"
            want = list(inspect.signature(getattr(proto, method)).parameters)
            got = list(inspect.signature(impl).parameters)
            assert got == want, f"{cls.__name__}.{method}{got} != interface {want}"


async def through_interface(s: Any, name: str, plan: list[np.ndarray]) -> Any:
    """Party 0 is the sender, party 1 the receiver, built by the registry and typed as the interface."""
    ch = PairChannel(s.net, 1 - s.party, CHANNEL)
    ctx = context_bytes(s.session_id, "ot-extension-test")
    make_sender, make_receiver = lookup(name)
    if s.party == 0:
        snd: OTExtensionSender = make_sender(ctx)
        await snd.setup(ch)
        return [await snd.extend(ch, len(x)) for x in plan]
    rcv: OTExtensionReceiver = make_receiver(ctx)
    await rcv.setup(ch)
    return [await rcv.extend(ch, x) for x in plan]


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
async def test_registered_extensions_give_random_ots(name: str) -> None:
    """v = v_x row by row, the format is uint64 (m, 2), and no message repeats within or across
    extends (the outputs are used directly as keys)."""
    plan = [random_bits(m) for m in (1, 200, 3000)]
    sent, got = await run_pair(through_interface, name, plan)
    seen: set[bytes] = set()
    for x, (v0, v1), v in zip(plan, sent, got, strict=True):
        m = len(x)
        for a in (v0, v1, v):
            assert a.shape == (m, 2) and a.dtype == np.uint64
        assert np.array_equal(v, np.where(x[:, None], v1, v0)), f"m={m}: receiver got the wrong messages"
        seen.update(bytes(row) for row in np.concatenate([v0, v1]))
    assert len(seen) == 2 * sum(len(x) for x in plan), "an OT message repeats"


# ------------------------------------------------------------------------------------ MASCOT
class CountingSender(KOSSender):
    extends = 0

    async def extend(self, ch: PairChannel, m: int) -> tuple[np.ndarray, np.ndarray]:
        type(self).extends += 1
        return await super().extend(ch, m)


class CountingReceiver(KOSReceiver):
    extends = 0

    async def extend(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        type(self).extends += 1
        return await super().extend(ch, choices)


async def check_triples(parties: list[MascotParty], sizes: list[int]) -> None:
    f = parties[0].field
    p, n = f.modulus, len(parties)
    setup, triples = await run_with(parties, [(setup_prog, (parties,)), (triples_prog, (parties, sizes))])
    raise_any(setup)
    raise_any(triples)
    for b, count in enumerate(sizes):
        a, bb, c = (
            reconstruct(f, [triples[i][b][0][k] for i in range(n)], alphas_of(parties), f"batch {b}")
            for k in range(3)
        )
        assert len(a) == count
        wrong = [t for t in range(count) if a[t] * bb[t] % p != c[t]]
        assert not wrong, f"batch {b}: c != a b for triples {wrong[:10]}"


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
async def test_mascot_with_the_extension_by_name(n: int) -> None:
    f = get_field(P61)
    parties = [MascotParty(f, i, n, ot_extension="kos") for i in range(n)]
    assert all(m.ot_ends == (KOSSender, KOSReceiver) for m in parties)
    await check_triples(parties, [50, 7])
    assert all(type(e) is KOSSender for m in parties for e in m.ot_send.values())


@pytest.mark.slow
async def test_mascot_builds_its_ends_from_a_pair_of_classes() -> None:
    """Both the set-up (COPE's seeds) and the triples go through the given classes."""
    f = get_field(P61)
    n = 2
    CountingSender.extends = CountingReceiver.extends = 0
    parties = [MascotParty(f, i, n, ot_extension=(CountingSender, CountingReceiver)) for i in range(n)]
    await check_triples(parties, [40])
    for m in parties:
        assert [type(e) for e in m.ot_send.values()] == [CountingSender] * (n - 1)
        assert [type(e) for e in m.ot_recv.values()] == [CountingReceiver] * (n - 1)
    # per ordered pair: one extend for COPE's seeds, one for the batch's Gilboa products
    assert CountingSender.extends == CountingReceiver.extends == 2 * n * (n - 1)
