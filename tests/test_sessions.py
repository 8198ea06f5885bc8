"""Several sessions on one cluster: tags never mix, ids are never reused, an abort stays in its session.

Messages are tagged (session, step), and the dealer derives each session's material from its id, so
sessions that run at the same time must neither see each other's messages nor share triples. The
cheating interceptor gets the session id, so a party can cheat in one session and behave in another:
that is how an abort in one session is shown not to disturb a concurrent one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from helpers import CheatNet, add_delta, assert_all_aborted, assert_array_eq, assert_same

import actors
from protocols.errors import AbortError
from protocols.field import P61, P127, get_field
from protocols.intercept import PassThrough
from protocols.net import Net
from protocols.online import Session


async def dot_prog(s: Session, a: list[int], b: list[int]) -> Any:
    x = await s.input(a if s.party == 0 else None, owner=0)
    y = await s.input(b if s.party == s.n - 1 else None, owner=s.n - 1)
    return await s.output(await s.dot(x, y)), await s.output(await s.mul(x, y)), s.session_id


async def sum_prog(s: Session, vals: list[list[int]]) -> Any:
    xs = [await s.input(vals[j] if s.party == j else None, owner=j) for j in range(s.n)]
    tot = xs[0]
    for x in xs[1:]:
        tot = tot + x
    return await s.output(tot), await s.output(tot * 2, to=0), s.session_id


@pytest.mark.parametrize("p", [P61, P127], ids=["p61", "p127"])
async def test_concurrent_sessions_with_different_programs(p: int, autojump_clock: Any) -> None:
    rng = np.random.default_rng(7)
    n = 3
    jobs: list[tuple[str, Any, tuple[Any, ...], Any]] = []
    for k in range(6):
        a = rng.integers(-1000, 1000, size=5 + k).tolist()
        b = rng.integers(-1000, 1000, size=5 + k).tolist()
        jobs.append((f"dot-{k}", dot_prog, (a, b), (int(np.dot(a, b)), np.multiply(a, b))))
        vals = [rng.integers(-(10**6), 10**6, size=4).tolist() for _ in range(n)]
        jobs.append((f"sum-{k}", sum_prog, (vals,), np.sum(vals, axis=0)))
    results: dict[str, list[Any]] = {}
    async with actors.local_cluster(n, modulus=p, preprocessing="dealer") as c:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for sid, prog, args, _ in jobs:

                    async def one(sid: str = sid, prog: Any = prog, args: tuple[Any, ...] = args) -> None:
                        results[sid] = await c.run(prog, *args, session=sid)

                    nursery.start_soon(one)
    for sid, prog, _, exp in jobs:
        res = results[sid]
        for i, r in enumerate(res):
            assert r[-1] == sid
            if prog is dot_prog:
                assert_array_eq(r[:2], exp, f"{sid} party {i}")
            else:
                assert_array_eq(r[0], exp, f"{sid} party {i}")
                assert_array_eq(r[1], exp * 2 if i == 0 else None, f"{sid} party {i}")


async def test_same_program_same_inputs_in_parallel_sessions(autojump_clock: Any) -> None:
    """Identical step sequences in two sessions: only the session id tells their messages apart."""
    a, b = [1, 2, 3], [4, 5, 6]
    async with actors.local_cluster(2, modulus=P61, preprocessing="dealer") as c:
        out: list[Any] = [None, None]

        async def one(k: int) -> None:
            out[k] = await c.run(dot_prog, a, b)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, 0)
                nursery.start_soon(one, 1)
    for res in out:
        for r in res:
            assert_array_eq(r[:2], (32, [4, 10, 18]))
    assert out[0][0][2] != out[1][0][2]


async def test_many_sequential_sessions_on_one_cluster(autojump_clock: Any) -> None:
    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            for k in range(15):
                res = await c.run(dot_prog, [k, 1], [2, k])
                for r in res:
                    assert_array_eq(r[:2], (3 * k, [2 * k, k]))


async def test_explicit_session_id_reaches_the_program(autojump_clock: Any) -> None:
    async with actors.local_cluster(2, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            res = await c.run(dot_prog, [1], [1], session="my-session")
    assert [r[2] for r in res] == ["my-session"] * 2


async def test_reusing_a_finished_session_id_is_rejected(autojump_clock: Any) -> None:
    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            await c.run(dot_prog, [1], [2], session="once")
            res = await c.run_each(dot_prog, [1], [2], session="once")
            for r in res:
                assert isinstance(r, (ValueError, AbortError)), r
            # the cluster is still fine afterwards
            res = await c.run(dot_prog, [3], [4], session="twice")
            assert_array_eq([r[0] for r in res], [12, 12, 12])


async def test_reusing_an_aborted_session_id_is_rejected(autojump_clock: Any) -> None:
    async def failing(s: Session) -> None:
        await s.input([1] if s.party == 0 else None, owner=0)
        raise RuntimeError("stop")

    async with actors.local_cluster(2, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            res = await c.run_each(failing, session="doomed")
            assert all(isinstance(r, (RuntimeError, AbortError)) for r in res)
            res = await c.run_each(dot_prog, [1], [2], session="doomed")
            assert all(isinstance(r, (ValueError, AbortError)) for r in res), res


async def test_starting_a_running_session_id_again_is_rejected(autojump_clock: Any) -> None:
    """A second run under the id of a running session fails and leaves the running one intact."""
    gate = trio.Event()

    async def slow(s: Session) -> Any:
        x = await s.input([5] if s.party == 0 else None, owner=0)
        await gate.wait()
        return await s.output(x)

    async with actors.local_cluster(2, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            first: list[Any] = []

            async def run_first() -> None:
                first.extend(await c.run_each(slow, session="busy"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_first)
                await trio.testing.wait_all_tasks_blocked()
                second = await c.run_each(dot_prog, [1], [1], session="busy")
                gate.set()
    assert all(isinstance(r, ValueError) for r in second), second
    assert_same(first, [5])


async def test_a_party_that_starts_late_gets_the_early_messages(autojump_clock: Any) -> None:
    """Frames for a session a party has not started yet are kept until it starts."""
    n = 3
    async with actors.local_cluster(n, modulus=P61, preprocessing="dealer") as c:
        out: list[Any] = [None] * n

        async def one(i: int) -> None:
            out[i] = await c.parties[i].run(sum_prog, [[1, 2], [3, 4], [5, 6]], session="late")

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, 0)
                nursery.start_soon(one, 1)
                await trio.testing.wait_all_tasks_blocked()
                assert out == [None] * n  # they wait for party 2
                nursery.start_soon(one, 2)
    for i, r in enumerate(out):
        assert_array_eq(r[0], [9, 12], f"party {i}")


class CheatIn(PassThrough):
    """Cheats (adds 1 to the first opened share) only in the named session."""

    def __init__(self, bad: str, p: int) -> None:
        self.bad = bad
        self.p = p

    def wrap_net(self, session: str, net: Net) -> Net:
        if session != self.bad:
            return net
        return CheatNet(net, get_field(self.p), ("share", 0), add_delta(1))


@pytest.mark.parametrize("n", [2, 3, 5])
async def test_an_aborted_session_does_not_disturb_a_concurrent_one(n: int, autojump_clock: Any) -> None:
    cheater = n - 1
    gate = trio.Event()
    seen_bad = trio.Event()

    async def good(s: Session) -> Any:
        x = await s.input([1, 2, 3] if s.party == 0 else None, owner=0)
        y = await s.mul(x, x)
        await gate.wait()  # stay open until the bad session has failed everywhere
        return await s.output(y)

    async with actors.local_cluster(
        n, modulus=P61, preprocessing="dealer", interceptors={cheater: CheatIn("bad", P61)}
    ) as c:
        out: dict[str, list[Any]] = {}

        async def run(sid: str, prog: Any, *args: Any) -> None:
            out[sid] = await c.run_each(prog, *args, session=sid)
            if sid == "bad":
                seen_bad.set()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "good", good)
                nursery.start_soon(run, "bad", dot_prog, [1, 2, 3], [4, 5, 6])
                await seen_bad.wait()
                gate.set()
            # and the parties still run fresh sessions afterwards
            after = await c.run(dot_prog, [2], [3])
    assert_all_aborted(out["bad"], [i for i in range(n) if i != cheater])
    assert_same(out["good"], [1, 4, 9])
    assert_array_eq([r[0] for r in after], [6] * n)


async def test_a_withholding_party_is_named_after_the_receive_timeout(autojump_clock: Any) -> None:
    """A party that keeps its link up but never sends its share would stall the others forever; after
    the engine's receive timeout they abort, naming it, and nothing is returned. (The withholder gives
    up by itself later, so without the timeout the others would see its abort instead.)"""

    async def prog(s: Session) -> Any:
        x = await s.input([1, 2] if s.party == 0 else None, owner=0)
        if s.party == 2:
            await trio.sleep(60)  # withholds its share of the opening for a minute
            raise AbortError("party 2 gives up")
        return await s.output(x)

    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        for p in c.parties:
            p.engine.recv_timeout = 30.0
        res = await c.run_each(prog)
    assert_all_aborted(res, [0, 1])
    assert all("party 2 sent nothing" in str(r) for r in res[:2]), res
