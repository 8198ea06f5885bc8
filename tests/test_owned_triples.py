"""Owned triples (``protocols.mascot.owned``): honest runs against plaintext, and cheaters caught.

Honest: for every owner, ``c = a b`` with ``b`` shared by each group, every MAC holds (checked from the
raw shares and by a MAC-checked opening), and the owner's ``a`` stays the owner's (the other parties'
shares of it are uniform, nothing about it is opened).

Cheats (the harness of ``test_offline_cheating``: the cheater runs the honest code and one kind of
message it sends or receives is rewritten, or its COPE output is off): a wrong Gilboa correction
sent to the owner or received by a cheating owner, a wrong MAC share, a wrong opened share of the
check and an equivocating coin toss. Every honest party must abort and return nothing; the same
wrappers with a no-op change give correct material (so the attacks are real messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import test_offline_cheating as oc
import trio
from helpers import MODULI, Cheat, assert_all_aborted, mod_id, run_each, tamper
from test_mascot import alphas_of, held, mod, ready_parties, reconstruct, run_honest

from protocols.errors import CommitmentError, MacCheckError
from protocols.field import P61, P127, get_field
from protocols.intercept import Forwarding
from protocols.mascot import TAU, MascotParty
from protocols.mascot.owned import MAX_WIDTH
from protocols.mascot.triples import ot_channel
from protocols.online import Session
from protocols.rounds import OwnedMul, run
from protocols.shares import SharedArray

pytestmark = pytest.mark.slow  # MASCOT: left out of the fast subset

WIDTH = 4  # products per group in the cheating runs (oc.COUNT groups)


def check_owned(f: Any, shares: list[Any], alphas: list[int], count: int, width: int) -> list[list[int]]:
    a, b, c = (reconstruct(f, [sh[k] for sh in shares], alphas, "abc"[k]) for k in range(3))
    p = f.modulus
    assert len(a) == len(c) == count * width and len(b) == count
    wrong = [e for e in range(count * width) if a[e] * b[e // width] % p != c[e]]
    assert not wrong, f"c != a b for products {wrong[:10]}"
    assert len(set(a)) == len(a) and len(set(b)) == len(b), "a or b repeats"
    return [a, b, c]


async def owned_prog(s: Session, parties: Sequence[MascotParty], owner: int, count: int, width: int) -> Any:
    abc = await parties[s.party].owned_triples(s, owner, count, width)
    return [held(x) for x in abc], [await s.output(x) for x in abc]


@pytest.mark.parametrize("p", MODULI, ids=mod_id)
@pytest.mark.parametrize("n", [2, 3], ids=lambda n: f"n{n}")
async def test_owned_triples_are_products(p: int, n: int) -> None:
    """Every owner, groups of 1 and 7 (and 40 groups, so Gilboa's chunks are not trivial): c = a b."""
    f = get_field(p)
    parties = await ready_parties(p, n)
    for owner in range(n):
        for count, width in ((40, 7), (3, 1)):
            res = await run_honest(p, n, owned_prog, owner, count, width)
            vals = check_owned(f, [r[0] for r in res], alphas_of(parties), count, width)
            for i in range(n):
                assert [mod(o, p) for o in res[i][1]] == vals, f"party {i} opened other values"


async def test_bad_requests_are_refused_before_anything_is_sent() -> None:
    for owner, count, width in ((2, 1, 4), (0, -1, 4), (0, 1, 0), (0, 1, MAX_WIDTH + 1)):
        with pytest.raises(AssertionError, match="ValueError"):
            await run_honest(P61, 2, owned_prog, owner, count, width)
    # and a fresh cluster works (a failed run drops the shared parties)
    res = await run_honest(P61, 2, owned_prog, 1, 2, 3)
    check_owned(get_field(P61), [r[0] for r in res], alphas_of(await ready_parties(P61, 2)), 2, 3)


# ---------------------------------------------------------------------------------------- cheats
# generators for the harness: the victim owns (the cheater is a Gilboa sender), or the cheater owns
oc.GENERATORS["owned-by-victim"] = lambda m, s, count, cheater: m.owned_triples(
    s, oc.victim_of(s.n, cheater), count, WIDTH
)
oc.GENERATORS["owned-by-cheater"] = lambda m, s, count, cheater: m.owned_triples(s, cheater, count, WIDTH)


def owned_gilboa_rule(direction: str) -> oc.RuleFactory:
    """A Gilboa correction off at element 2 of every bit block: ``send``, the cheater's to the owning
    victim; ``recv``, as the cheating owner receives the victim's (its own c share goes wrong)."""

    def rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
        f = parties[0].field
        k, m = f.bits, TAU * oc.COUNT * WIDTH
        channel = (lambda c, v: ot_channel(v, c)) if direction == "send" else ot_channel
        mutate = oc.add_at(lambda total: [lv * m + 2 for lv in range(k)], 4321 if live else 0)
        return oc.Rule(
            oc.every(oc.on_channel(channel, cheater, victim), oc.n_elements(f, k * m)), mutate, direction
        )

    return rule


def check_value_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
    """The cheater's share of the check value z (the one-element opening)."""
    f = parties[0].field
    return oc.Rule(
        oc.every(oc.session_round, oc.n_elements(f, 1)), oc.add_at(lambda t: [0], 1 if live else 0)
    )


OWNED_CASES: dict[str, oc.Case] = {
    "correction-sent-to-owner": oc.Case(rule=owned_gilboa_rule("send"), kind="owned-by-victim", text="check"),
    "correction-received-by-owner": oc.Case(
        rule=owned_gilboa_rule("recv"), kind="owned-by-cheater", text="check"
    ),
    "mac-share-of-own-values": oc.Case(
        prepare=oc.mac_share_prepare("sender"), kind="owned-by-cheater", detector=MacCheckError
    ),
    "opened-check-value": oc.Case(rule=check_value_rule, kind="owned-by-victim", detector=MacCheckError),
    "coin-combine-seed": oc.Case(rule=oc.coin_rule(0, 1), kind="owned-by-victim", detector=CommitmentError),
}


@pytest.mark.parametrize(("p", "n"), [(P127, 3), (P61, 2)], ids=["p127-n3", "p61-n2"])
@pytest.mark.parametrize("name", list(OWNED_CASES))
async def test_a_cheater_in_owned_triples_is_caught(p: int, n: int, name: str) -> None:
    case = OWNED_CASES[name]
    run = await oc.run_case(case, p, n, n - 1)
    oc.check_aborted(run, n - 1, case)


@pytest.mark.parametrize("name", list(OWNED_CASES))
async def test_owned_control_no_op_wrappers_give_products(name: str) -> None:
    p, n = P127, 3
    case = OWNED_CASES[name]
    run = await oc.run_case(case, p, n, n - 1, live=False)
    for i, r in enumerate(run.results):
        assert not isinstance(r, BaseException), f"party {i} failed in a control run: {r!r}"
    assert run.hits, "the no-op wrapper never fired: its target is wrong"
    check_owned(get_field(p), [r[0] for r in run.results], alphas_of(run.parties), oc.COUNT, WIDTH)
    assert np.all([len(r[1]) == 3 for r in run.results])


# ---------------------------------------------------------------------------------------- online
XS = np.array([3, -4, 5, 0, 7, 11, -2, 9, 1, 6])  # the owner's values
YS = np.array([10, -3, 2**40, 0])  # secret factors
INDEX = np.array([0, 1, 1, 3, 2, 0, 0, 1, 3, 3])  # x[e] times y[INDEX[e]]


async def online_prog(s: Session, owner: int = 1, width: int = 2) -> Any:
    """``x * y[index]`` with ``x`` input by ``owner`` (groups of ``width``: several per factor)."""
    x = await s.input(XS if s.party == owner else None, owner=owner)
    y = await s.input(YS if s.party == 0 else None, owner=0)
    (z,) = await run(s, _owned_step(x, y, owner, width))
    return (await s.output(z)).tolist()


def _owned_step(x: SharedArray, y: SharedArray, owner: int, width: int) -> Any:
    return (yield [OwnedMul(x, y, INDEX, owner, width)])


@pytest.mark.parametrize("n", [2, 3], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("width", [1, 2, 32])
async def test_owned_products_match_plaintext(n: int, width: int) -> None:
    want = [int(a) * int(YS[i]) for a, i in zip(XS, INDEX, strict=True)]
    for r in await run_each(n, P127, online_prog, n - 1, width):
        assert r == want


class TamperOwned(Forwarding):
    """The cheater's owned triples with one share (value or MAC) of ``a``, ``b`` or ``c`` off."""

    def __init__(self, inner: Any, which: int, part: str) -> None:
        super().__init__(inner)
        self.which, self.part, self.hits = which, part, 0

    async def owned_triples(self, owner: int, n: int, width: int) -> Any:
        abc = list(await self.inner.owned_triples(owner, n, width))
        abc[self.which] = tamper(abc[self.which], 5, self.part)
        self.hits += 1
        return tuple(abc)


@pytest.mark.parametrize("which", [0, 1, 2], ids=["a", "b", "c"])
@pytest.mark.parametrize("part", ["value", "mac"])
async def test_wrong_owned_material_is_caught(which: int, part: str) -> None:
    """A share of ``a``, ``b`` or ``c`` (or its MAC share) off at the cheater: the openings' MAC check
    or the output's catches it, at every honest party."""
    n, cheater = 3, 2
    cheat = Cheat(pre=lambda pre: TamperOwned(pre, which, part))
    res = await run_each(n, P127, online_prog, 1, 2, interceptors={cheater: cheat})
    assert cheat.hits
    assert_all_aborted(res, [0, 1])


async def test_owned_requests_with_bad_indices_are_refused() -> None:
    async def prog(s: Session, index: Any) -> Any:
        x = await s.input(XS if s.party == 0 else None, owner=0)
        y = await s.input(YS if s.party == 0 else None, owner=0)
        await run(s, _bad(x, y, np.asarray(index)))

    def _bad(x: SharedArray, y: SharedArray, index: np.ndarray) -> Any:
        return (yield [OwnedMul(x, y, index, 0)])

    for index, what in ((INDEX[:-1], "indices"), (INDEX + 4, "outside")):
        res = await run_each(2, P61, prog, index)
        # the refusing party raises; a peer may hear of it first as the session's abort
        assert all(isinstance(r, Exception) and what in str(r) for r in res), res
        assert any(isinstance(r, ValueError) for r in res), res


# ------------------------------------------------------------------------------ through the service
async def every_owner_prog(s: Session) -> Any:
    """``x_j * y[index]`` for every party's own ``x_j`` (widths 2 and 32)."""
    y = await s.input(YS if s.party == 0 else None, owner=0)
    out = []
    for j in range(s.n):
        x = await s.input(XS * (j + 1) if s.party == j else None, owner=j)
        (z,) = await run(s, _owned_step(x, y, j, 2 if j % 2 else 32))
        out.append((await s.output(z)).tolist())
    return out


async def test_the_offline_service_makes_owned_triples_to_plan_and_sessions_use_them() -> None:
    """The plan names ``owned<j>:<width>`` pools, the MASCOT offline services make exactly them (one
    planned batch each) and the products are right at every party."""
    import actors
    from actors.offline import Watermarks
    from actors.plan import preprocessing_plan

    n = 3
    need = await preprocessing_plan(every_owner_prog, n, modulus=P61)
    owned = {k: v for k, v in need.items() if k.startswith("owned")}
    # groups: per y entry, ceil(count / width); INDEX uses y entries 0..3 with counts 3, 3, 1, 3
    assert owned == {"owned0:32": 4, "owned1:2": 7, "owned2:32": 4}, need
    assert "triple" not in need, need  # no Beaver triple: the check's come inside the batches
    wm = Watermarks.for_plan(need, batch=4096)
    with trio.fail_after(120):
        async with actors.local_cluster(n, modulus=P61, watermarks=wm) as c:
            await c.stock(need)
            res = await c.run(every_owner_prog)
            levels = [p.offline.pool.levels() for p in c.parties]
            made = [dict(p.offline.generated) for p in c.parties]
    want = [[int(a) * (j + 1) * int(YS[i]) for a, i in zip(XS, INDEX, strict=True)] for j in range(n)]
    assert all(r == want for r in res), res
    for lv in levels:
        assert all(lv.get(k, 0) == 0 for k in owned), lv  # exactly the plan was drawn
    for m in made:
        assert {k: m.get(k, 0) for k in owned} == owned, m  # made by MASCOT, to plan


def test_owned_pool_names_are_validated_and_configurable(tmp_path: Any) -> None:
    """``owned<j>:<width>`` is a pool name for parties ``j < n`` and widths 1..1024; the config takes
    its watermarks and batch, and names what is wrong with a bad one."""
    from actors.config import ConfigError, _read_pool, _Reader
    from protocols.preprocessing import mixed

    f = get_field(P61)
    assert mixed.invalid("owned2:32", 10, f, 3) is None
    assert "no party 3 among 3" in str(mixed.invalid("owned3:32", 10, f, 3))
    assert "groups of 1025 products" in str(mixed.invalid("owned0:1025", 10, f, 3))
    assert mixed.parse("owned0:032") is None and mixed.parse("owned:32") is None
    # a leader cannot make the others allocate for more products than a batch may hold
    top = mixed.MAX_OWNED_PRODUCTS // 32
    assert mixed.invalid("owned0:32", top, f, 3) is None
    assert "more products than a batch may hold" in str(mixed.invalid("owned0:32", top + 1, f, 3))
    assert mixed.max_count(f, 3, "owned0:32", 1 << 40) == top  # the planner keeps to it too
    assert mixed.owned_name(1, 32) == "owned1:32" and mixed.item_bytes(f, "owned1:32") == 2 * 8 * 65
    r = _Reader(tmp_path / "party.toml")
    wm = _read_pool(r, {"pool": {"owned1:32": [64, 128], "batch": {"owned1:32": 16}}}, "p61", 3)
    assert wm.of("owned1:32") == (64, 128) and wm.batch_of("owned1:32") == 16
    with pytest.raises(ConfigError, match=r'pool\."owned3:32".*no party 3'):
        _read_pool(r, {"pool": {"owned3:32": [0, 1]}}, "p61", 3)
