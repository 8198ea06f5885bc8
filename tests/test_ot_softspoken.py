"""SoftSpokenOT (``protocols.ot.softspoken``): building blocks, the protocol, cheating, and MASCOT on it.

The building blocks (block layout, the small-field VOLE xor sums, the GGM trees with their PPRF check)
are checked against direct definitions without a network. The protocol runs between two parties of a
dealer cluster (party 0 = extension sender). Cheating receivers run the honest code behind the
``Tamper`` interceptor of ``test_ot_base``; the honest end must raise an ``AbortError`` naming them.

Messages on the OT channel (``Tamper`` indices): the receiver sends 0 = the base-OT point A, 1 = the
tree message [level sums, PPRF check sums, digest], then per extend [corrections, commitment] and
[nonce, seed share, x~, t~]; the sender sends 0 = its base-OT points, then one seed share per extend.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import trio
from test_ot_base import Tamper, run_pair
from test_ot_extension import check_triples

from protocols.commitments import context_bytes
from protocols.errors import AbortError, CommitmentError, ProtocolError
from protocols.field import P61, get_field
from protocols.mascot import MascotParty
from protocols.net import PairChannel
from protocols.ot.bitmatrix import unpack_bits
from protocols.ot.extension import lookup
from protocols.ot.softspoken import (
    DEFAULT_K,
    KAPPA,
    MAX_K,
    Layout,
    SoftSpokenReceiver,
    SoftSpokenSender,
    open_trees,
    padded_rows,
    plant_trees,
    xor_reduce,
)

CHANNEL = 3


def random_bits(n: int) -> np.ndarray:
    return unpack_bits(np.frombuffer(os.urandom(8 * (-(-n // 64))), dtype=np.uint64), n)


# ------------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("k", range(1, MAX_K + 1))
def test_layout_covers_the_128_columns(k: int) -> None:
    lay = Layout(k)
    assert sum(lay.depths) == KAPPA and max(lay.depths) == k
    assert lay.blocks == -(-KAPPA // k)
    assert lay.leaves == sum(1 << d for d in lay.depths)
    assert [g.blocks for g in lay.groups] == ([KAPPA // k, 1] if KAPPA % k else [KAPPA // k])
    assert list(lay.block_of_col) == [b for b, d in enumerate(lay.depths) for _ in range(d)]
    offsets = [
        lay.sum_offset(b, lv, s) for b, d in enumerate(lay.depths) for lv in range(1, d) for s in (0, 1)
    ]
    assert sorted(offsets) == list(range(0, lay.sums_bytes, 16))


@pytest.mark.parametrize("k", [0, MAX_K + 1, -2, 2.0, True, "2"])
def test_layout_refuses_a_bad_k(k: Any) -> None:
    with pytest.raises(ValueError, match="k must be an integer"):
        Layout(k)
    with pytest.raises(ValueError, match="k must be an integer"):
        SoftSpokenSender(b"", k)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_xor_reduce_gives_u_and_v(depth: int) -> None:
    """u = xor of all leaves, v_i = xor of the leaves whose index has bit i set."""
    blocks, n = 3, 7
    leaves = np.frombuffer(os.urandom(8 * blocks * n << depth), dtype=np.uint64).reshape(
        blocks, 1 << depth, n
    )
    u = np.empty((blocks, n), dtype=np.uint64)
    v = np.empty((blocks, depth, n), dtype=np.uint64)
    xor_reduce(leaves.copy(), v, u)
    assert np.array_equal(u, np.bitwise_xor.reduce(leaves, axis=1))
    for i in range(depth):
        chosen = [x for x in range(1 << depth) if x >> i & 1]
        assert np.array_equal(v[:, i], np.bitwise_xor.reduce(leaves[:, chosen], axis=1))


def base_ots(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k0 = np.frombuffer(os.urandom(KAPPA * 16), dtype=np.uint8).reshape(KAPPA, 16)
    k1 = np.frombuffer(os.urandom(KAPPA * 16), dtype=np.uint8).reshape(KAPPA, 16)
    choices = random_bits(KAPPA)
    return k0, k1, choices, np.where(choices[:, None], k1, k0)


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_ggm_trees_puncture_exactly_delta(k: int) -> None:
    """The sender learns every leaf seed but one per tree, and the missing one is at Delta_b, whose bit
    i (column col0_b + i) is the complement of the base-OT choice at level depth - 1 - i."""
    lay = Layout(k)
    k0, k1, choices, keys = base_ots(k)
    msg, seeds = plant_trees(lay, k0, k1, b"ctx")
    assert [len(p) for p in msg] == [lay.sums_bytes, lay.gamma_sums_bytes, 32]
    opened = open_trees(lay, keys, choices, *msg, b"ctx")
    assert opened is not None
    delta_bits, rows, got = opened
    missing = []
    for b, d in enumerate(lay.depths):
        off = lay.col0[b]
        delta_b = sum((1 - int(choices[off + i])) << (d - 1 - i) for i in range(d))
        assert [int(delta_bits[off + i]) for i in range(d)] == [delta_b >> i & 1 for i in range(d)]
        missing.append(lay.leaf0[b] + delta_b)
    assert rows == [r for r in range(lay.leaves) if r not in missing]
    assert got == [seeds[r] for r in rows]
    assert len(set(seeds)) == lay.leaves


def test_ggm_open_fails_on_inconsistent_trees() -> None:
    """Any change to the tree message the sender relies on, or a different context, fails the check."""
    lay = Layout(4)
    k0, k1, choices, keys = base_ots(4)
    (sums, gsums, digest), _ = plant_trees(lay, k0, k1, b"ctx")

    def flip(b: bytes, at: int) -> bytes:
        return b[:at] + bytes([b[at] ^ 1]) + b[at + 1 :]

    used = lay.sum_offset(5, 2, int(choices[lay.col0[5] + 2]))  # the side block 5 unmasks at level 2
    unused = lay.sum_offset(5, 2, 1 - int(choices[lay.col0[5] + 2]))
    assert open_trees(lay, keys, choices, flip(sums, used), gsums, digest, b"ctx") is None
    assert open_trees(lay, keys, choices, flip(sums, unused), gsums, digest, b"ctx") is not None
    assert open_trees(lay, keys, choices, sums, flip(gsums, 40), digest, b"ctx") is None
    assert open_trees(lay, keys, choices, sums, gsums, flip(digest, 0), b"ctx") is None
    assert open_trees(lay, keys, choices, sums, gsums, digest, b"other") is None


# ------------------------------------------------------------------------------------ protocol
async def ss_prog(
    s: Any, plan: list[Any], k: int = DEFAULT_K, correlated: bool = False, box: dict | None = None
) -> Any:
    """Party 0 = extension sender, party 1 = receiver; ``plan`` lists the choice vectors."""
    ch = PairChannel(s.net, 1 - s.party, CHANNEL)
    ctx = context_bytes(s.session_id, "softspoken-test")
    if s.party == 0:
        snd = SoftSpokenSender(ctx, k)
        await snd.setup(ch)
        if box is not None:
            box["delta"] = snd.delta
            box["ready"].set()
        outs = []
        for choices in plan:
            m = len(choices)
            outs.append(await (snd.extend_correlated(ch, m) if correlated else snd.extend(ch, m)))
        return snd.delta, outs
    rcv = SoftSpokenReceiver(ctx, k)
    await rcv.setup(ch)
    outs = []
    for choices in plan:
        outs.append(await (rcv.extend_correlated(ch, choices) if correlated else rcv.extend(ch, choices)))
    return outs


def check_random_ots(plan: list[np.ndarray], results: list[Any]) -> None:
    for r in results:
        if isinstance(r, BaseException):
            raise r
    _, souts = results[0]
    routs = results[1]
    seen: set[bytes] = set()
    for x, (v0, v1), v in zip(plan, souts, routs, strict=True):
        m = len(x)
        assert v0.shape == v1.shape == v.shape == (m, 2)
        assert v0.dtype == v1.dtype == v.dtype == np.uint64
        assert np.array_equal(v, np.where(x[:, None], v1, v0)), f"m={m}: receiver got the wrong messages"
        seen.update(bytes(row) for row in np.concatenate([v0, v1]))
    assert len(seen) == 2 * sum(len(x) for x in plan), "an OT message repeats within or across extends"


async def test_random_ots_for_many_sizes_and_repeated_extends() -> None:
    plan = [random_bits(m) for m in (1, 63, 127, 128, 1000, 4097, 100_001, 5)]
    check_random_ots(plan, await run_pair(ss_prog, plan))


@pytest.mark.parametrize("k", [1, 3, 4, 5, 8])
async def test_random_ots_for_other_k(k: int) -> None:
    """k = 1 is IKNP/KOS; k = 3 and 5 leave a remainder block (128 % k columns)."""
    plan = [random_bits(m) for m in (77, 3001, 64)]
    check_random_ots(plan, await run_pair(ss_prog, plan, k))


async def test_choice_bits_as_integers_and_all_equal() -> None:
    plan = [np.zeros(300, dtype=np.uint8), np.ones(300, dtype=np.int64)]
    results = await run_pair(ss_prog, plan)
    check_random_ots([p.astype(bool) for p in plan], results)


@pytest.mark.parametrize("k", [2, 3, 8])
async def test_delta_correlation_before_hashing(k: int) -> None:
    """q_j ^ t_j = x_j Delta: the subspace VOLE ends in KOS's correlation."""
    plan = [random_bits(1000), random_bits(64), random_bits(7)]
    (delta, qs), ts = await run_pair(ss_prog, plan, k, True)
    assert delta.shape == (2,) and delta.dtype == np.uint64 and np.any(delta != 0)
    for x, q, t in zip(plan, qs, ts, strict=True):
        assert np.array_equal(q ^ t, np.where(x[:, None], delta, np.uint64(0)))


async def test_both_directions_at_once() -> None:
    """Each party is sender on one channel and receiver on the other, concurrently (as in MASCOT)."""

    async def prog(s: Any) -> Any:
        ctx = context_bytes(s.session_id, "softspoken-both")
        out: dict[str, Any] = {}

        async def send(ch: PairChannel) -> None:
            snd = SoftSpokenSender(ctx)
            await snd.setup(ch)
            out["send"] = await snd.extend(ch, 777)

        async def recv(ch: PairChannel, x: np.ndarray) -> None:
            rcv = SoftSpokenReceiver(ctx)
            await rcv.setup(ch)
            out["recv"] = (x, await rcv.extend(ch, x))

        peer = 1 - s.party
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, PairChannel(s.net, peer, 10 + s.party))
            nursery.start_soon(recv, PairChannel(s.net, peer, 10 + peer), random_bits(777))
        return out

    a, b = await run_pair(prog)
    for snd, rcv in ((a, b), (b, a)):
        (v0, v1), (x, v) = snd["send"], rcv["recv"]
        assert np.array_equal(v, np.where(x[:, None], v1, v0))


def test_registered_as_softspoken() -> None:
    assert lookup("softspoken") == (SoftSpokenSender, SoftSpokenReceiver)
    assert SoftSpokenSender(b"").k == SoftSpokenReceiver(b"").k == DEFAULT_K


async def test_misuse_is_a_plain_error() -> None:
    snd, rcv = SoftSpokenSender(b""), SoftSpokenReceiver(b"")
    with pytest.raises(RuntimeError, match="setup"):
        await snd.extend(None, 5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="setup"):
        await rcv.extend(None, np.ones(5, dtype=bool))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="setup"):
        _ = snd.delta

    async def prog(s: Any) -> Any:
        ch = PairChannel(s.net, 1 - s.party, CHANNEL)
        end: Any = SoftSpokenSender(b"c") if s.party == 0 else SoftSpokenReceiver(b"c")
        await end.setup(ch)
        errors = []
        for bad in ([], [[1, 0]], [2, 1], [0.5]) if s.party else (0, -3, True, 2.5):
            try:
                await end.extend(ch, np.asarray(bad) if s.party else bad)
            except ValueError as e:
                errors.append(str(e))
        return errors

    snd_errors, rcv_errors = await run_pair(prog)
    assert len(snd_errors) == 4 and all("positive integer" in e for e in snd_errors)
    assert len(rcv_errors) == 4 and all("choices must be" in e for e in rcv_errors)


def test_padding_covers_the_check() -> None:
    for m in (1, 63, 64, 1000, 1 << 20):
        rows = padded_rows(m)
        assert rows % 64 == 0 and rows >= m + 168


# ------------------------------------------------------------------------------------ cheating
def flip_corrections(blocks: list[int], rows: list[int]) -> Callable[[Any], Any]:
    """Rewrite the receiver's [corrections, commitment]: flip bits ``rows`` of blocks ``blocks``."""

    def mutate(msg: Any) -> Any:
        width = padded_rows(1000) // 64  # the tests below extend 1000 OTs
        c = np.frombuffer(bytes(msg[0]), dtype=np.uint64).reshape(-1, width).copy()
        for b in blocks:
            for r in rows:
                c[b, r // 64] ^= np.uint64(1) << np.uint64(r % 64)
        return [c.tobytes(), msg[1]]

    return mutate


def delta_blocks(delta: np.ndarray, k: int) -> list[int]:
    """Delta_b for each block of k columns (k dividing 128)."""
    bits = unpack_bits(delta, KAPPA)
    return [sum(int(bits[b * k + i]) << i for i in range(k)) for b in range(KAPPA // k)]


@pytest.mark.parametrize("k", [2, 4])
async def test_inconsistent_choice_bits_in_one_block_fail_the_check(k: int) -> None:
    """Different choice bits in one block whose Delta_b != 0 (a third of the OTs' rows flipped there):
    the sender's q changes in that block's Delta columns only, and the check fails at the sender."""
    box: dict[str, Any] = {"ready": trio.Event()}

    def mutate(msg: Any) -> Any:
        block = next(b for b, d in enumerate(delta_blocks(box["delta"], k)) if d)
        return flip_corrections([block], [0, 5, 900])(msg)

    cheat = Tamper(2, mutate, before=box["ready"].wait)  # 2: the first [corrections, commitment]
    results = await run_pair(ss_prog, [random_bits(1000)], k, False, box, interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], AbortError) and results[0].culprit == 1, results[0]
    assert "correlation check" in str(results[0])


async def test_a_deviation_where_delta_b_is_zero_goes_unseen() -> None:
    """The other side of the trade-off: in a block with Delta_b = 0 the corrections never reach q, so the
    check passes and the outputs are right; a cheater learns Delta_b = 0, the bits it bet on (a
    deviation passes with probability 2^-k per block, as a KOS column passes with 1/2)."""
    box: dict[str, Any] = {"ready": trio.Event()}
    k = 2
    zero: list[int] = []

    def mutate(msg: Any) -> Any:
        zero.extend(b for b, d in enumerate(delta_blocks(box["delta"], k)) if d == 0)
        return flip_corrections(zero[:1], [3, 700])(msg)

    plan = [random_bits(1000)]
    cheat = Tamper(2, mutate, before=box["ready"].wait)
    results = await run_pair(ss_prog, plan, k, False, box, interceptors={1: cheat})
    if not zero:  # Delta_b != 0 in all 64 blocks: probability (3/4)^64 ~ 1e-8
        pytest.skip("no block with Delta_b = 0")
    check_random_ots(plan, results)


async def test_inconsistent_choice_bits_in_every_block_fail_the_check() -> None:
    """Without knowing Delta: one row flipped in every block passes only if all Delta_b are 0 (2^-128)."""
    cheat = Tamper(2, flip_corrections(list(range(KAPPA // DEFAULT_K)), [17]))
    results = await run_pair(ss_prog, [random_bits(1000)], interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], AbortError) and results[0].culprit == 1, results[0]


async def test_control_run_with_a_no_op_tamper_succeeds() -> None:
    plan = [random_bits(1000)]
    cheat = Tamper(2, flip_corrections([], []))
    results = await run_pair(ss_prog, plan, interceptors={1: cheat})
    assert cheat.hits == 1
    check_random_ots(plan, results)


def in_list(i: int, f: Callable[[bytes], Any]) -> Callable[[Any], Any]:
    def mutate(msg: Any) -> Any:
        msg = list(msg)
        msg[i] = f(bytes(msg[i]))
        return msg

    return mutate


def flip_byte(at: int) -> Callable[[bytes], bytes]:
    return lambda b: b[:at] + bytes([b[at] ^ 1]) + b[at + 1 :]


def flip_both_sides(b: bytes) -> bytes:
    """Both masked sums of block 0, level 1: the sender uses one of them whatever its choice."""
    lay = Layout(DEFAULT_K)
    return flip_byte(lay.sum_offset(0, 1, 1))(flip_byte(lay.sum_offset(0, 1, 0))(b))


@pytest.mark.parametrize(
    "index,mutate,error,words",
    [
        pytest.param(1, in_list(0, flip_both_sides), AbortError, "PPRF", id="tree-level-sums"),
        pytest.param(1, in_list(1, flip_byte(33)), AbortError, "PPRF", id="tree-check-sums"),
        pytest.param(1, in_list(2, flip_byte(0)), AbortError, "PPRF", id="tree-digest"),
        pytest.param(1, in_list(0, lambda b: b[:-1]), ProtocolError, "level sums", id="short-level-sums"),
        pytest.param(1, in_list(1, lambda b: b + b"\0"), ProtocolError, "check sums", id="long-check-sums"),
        pytest.param(1, lambda msg: list(msg)[:2], ProtocolError, "tree message", id="short-tree-message"),
        pytest.param(
            1, lambda msg: b"".join(map(bytes, msg)), ProtocolError, "tree message", id="tree-bytes"
        ),
        pytest.param(1, in_list(2, lambda b: 7), ProtocolError, "digest", id="tree-digest-int"),
        pytest.param(2, in_list(0, lambda b: b[:-8]), ProtocolError, "corrections", id="short-corrections"),
        pytest.param(2, lambda msg: bytes(msg[0]), ProtocolError, "corrections", id="corrections-bytes"),
        pytest.param(2, in_list(1, lambda b: b[:31]), ProtocolError, "commitment", id="short-commitment"),
        pytest.param(2, lambda msg: None, ProtocolError, "corrections", id="none"),
        pytest.param(3, in_list(1, flip_byte(0)), CommitmentError, "check seed", id="wrong-seed-opening"),
        pytest.param(3, in_list(0, flip_byte(0)), CommitmentError, "check seed", id="wrong-nonce"),
        pytest.param(3, in_list(3, flip_byte(0)), AbortError, "correlation", id="wrong-t-tilde"),
        pytest.param(3, in_list(2, flip_byte(15)), AbortError, "correlation", id="wrong-x-tilde"),
        pytest.param(3, in_list(2, lambda b: b + b"\0"), ProtocolError, "x~", id="long-x-tilde"),
        pytest.param(3, lambda msg: list(msg)[:3], ProtocolError, "opening", id="short-opening"),
        pytest.param(3, lambda msg: "garbage", ProtocolError, "opening", id="string-opening"),
    ],
)
async def test_cheating_receiver_messages(
    index: int, mutate: Callable[[Any], Any], error: type, words: str
) -> None:
    """A bad tree or extend message is an ``AbortError`` (``ProtocolError`` if malformed) naming the
    receiver at the sender, never a crash."""
    cheat = Tamper(index, mutate)
    results = await run_pair(ss_prog, [random_bits(300)], interceptors={1: cheat})
    assert cheat.hits == 1
    err = results[0]
    assert type(err) is error and err.culprit == 1, err
    assert words in str(err), err


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda msg: bytes(msg)[:16], id="short-seed"),
        pytest.param(lambda msg: [bytes(msg)], id="list-seed"),
        pytest.param(lambda msg: 12345, id="int-seed"),
    ],
)
async def test_cheating_sender_seed_share(mutate: Callable[[Any], Any]) -> None:
    """The sender's messages: 0 = base-OT points B_i (it is the base-OT receiver), 1 = its seed share."""
    cheat = Tamper(1, mutate)
    results = await run_pair(ss_prog, [random_bits(300)], interceptors={0: cheat})
    assert cheat.hits == 1
    assert isinstance(results[1], ProtocolError) and results[1].culprit == 0, results[1]


async def test_ends_with_different_k_are_refused() -> None:
    """A receiver on k = 4 against a sender on k = 2: its tree message has the wrong size."""

    async def prog(s: Any) -> Any:
        ch = PairChannel(s.net, 1 - s.party, CHANNEL)
        if s.party == 0:
            await SoftSpokenSender(b"c", 2).setup(ch)
        else:
            await SoftSpokenReceiver(b"c", 4).setup(ch)

    results = await run_pair(prog)
    assert isinstance(results[0], ProtocolError) and results[0].culprit == 1, results[0]


# ------------------------------------------------------------------------------------ MASCOT
@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
async def test_mascot_on_softspoken(n: int) -> None:
    """MascotParty(..., ot_extension="softspoken"): COPE's seeds and the Gilboa products come from
    SoftSpokenOT, and the triples are right and MAC'd (``check_triples`` opens and reconstructs them)."""
    f = get_field(P61)
    parties = [MascotParty(f, i, n, ot_extension="softspoken") for i in range(n)]
    assert all(m.ot_ends == (SoftSpokenSender, SoftSpokenReceiver) for m in parties)
    await check_triples(parties, [50, 7])
    assert all(type(e) is SoftSpokenSender for m in parties for e in m.ot_send.values())
    assert all(type(e) is SoftSpokenReceiver for m in parties for e in m.ot_recv.values())


@pytest.mark.slow
async def test_mascot_on_softspoken_with_another_k() -> None:
    """A non-default k through a class pair (k = 3: a remainder block)."""
    f = get_field(P61)
    ends = (functools.partial(SoftSpokenSender, k=3), functools.partial(SoftSpokenReceiver, k=3))
    parties = [MascotParty(f, i, 2, ot_extension=ends) for i in range(2)]
    await check_triples(parties, [40])
    assert all(e.k == 3 for m in parties for e in m.ot_send.values())
