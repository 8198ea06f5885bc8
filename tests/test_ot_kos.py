"""KOS OT extension (``protocols.ot.kos``) and its building blocks.

The building blocks are checked against slow, obvious references (``unpackbits`` transpose, a per-row
TCCR hash, GCM's own GHASH for the field multiplication). The protocol runs between two parties of a
dealer cluster (party 0 = extension sender). Cheating receivers run the honest code behind the
``Tamper`` interceptor of ``test_ot_base``; the honest sender must raise an ``AbortError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import trio
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from test_ot_base import Tamper, run_pair

from protocols.commitments import context_bytes
from protocols.errors import AbortError, CommitmentError, ProtocolError
from protocols.net import PairChannel
from protocols.ot import KOSReceiver, KOSSender, padded_rows
from protocols.ot.bitmatrix import pack_bits, transpose_128, unpack_bits
from protocols.ot.crhash import FIXED_KEY, TCCRHash
from protocols.ot.gf128 import CHUNK_ROWS, ONE, PolyHash, gcm_mul, xor_bytes

CHANNEL = 3


def random_bits(n: int) -> np.ndarray:
    return unpack_bits(np.frombuffer(os.urandom(8 * (-(-n // 64))), dtype=np.uint64), n)


def random_rows(n: int) -> np.ndarray:
    return np.frombuffer(os.urandom(16 * n), dtype=np.uint64).reshape(n, 2).copy()


# ------------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("width", [1, 3, 1024, 1500])
def test_transpose_matches_unpackbits(width: int) -> None:
    cols = np.frombuffer(os.urandom(128 * 8 * width), dtype=np.uint64).reshape(128, width)
    bits = np.unpackbits(cols.view(np.uint8), axis=1, bitorder="little")  # (128, m)
    expected = np.ascontiguousarray(np.packbits(bits.T, axis=1, bitorder="little")).view(np.uint64)
    assert np.array_equal(transpose_128(cols), expected)


def test_pack_unpack_roundtrip() -> None:
    bits = random_bits(200)
    assert np.array_equal(unpack_bits(pack_bits(bits, 4), 200), bits)


def test_tccr_hash_matches_its_definition() -> None:
    """H(j, x) = pi(pi(x) ^ j) ^ pi(x), pi = AES under the fixed key, j in the low word."""
    ecb = Cipher(algorithms.AES(FIXED_KEY), modes.ECB()).encryptor()  # noqa: S305

    def pi(b: bytes) -> bytes:
        return ecb.update(b)

    n, start = 40000, (1 << 40) - 7  # crosses a chunk boundary; indices beyond 32 bits
    rows = random_rows(n)
    delta = random_rows(1)[0]
    h = TCCRHash()
    got, got_x = h.hash_rows(start, rows), h.hash_rows(start, rows, xor=delta)
    for i in (0, 1, 32767, 32768, n - 1):
        for x, out in ((rows[i], got), (rows[i] ^ delta, got_x)):
            a = pi(x.tobytes())
            j = (start + i).to_bytes(8, "little") + bytes(8)
            expected = xor_bytes(pi(xor_bytes(a, j)), a)
            assert out[i].tobytes() == expected


def test_gcm_mul_agrees_with_ghash() -> None:
    """One block X of associated data: tag = E_K(J0) ^ ((X * H) ^ L) * H."""
    key, x = os.urandom(16), os.urandom(16)
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    h = ecb.update(bytes(16))
    j0 = ecb.update(bytes(12) + b"\0\0\0\1")
    length = (128).to_bytes(8, "big") + bytes(8)
    tag = AESGCM(key).encrypt(bytes(12), b"", x)
    assert tag == xor_bytes(j0, gcm_mul(xor_bytes(gcm_mul(x, h), length), h))
    assert gcm_mul(x, ONE) == x == gcm_mul(ONE, x)


def test_poly_hash_is_affine_with_a_linear_part() -> None:
    n = CHUNK_ROWS + 100
    p = PolyHash(os.urandom(32), n)
    a, b = random_rows(n), random_rows(n)
    assert xor_bytes(p.linear(a), p.linear(b)) == p.linear(a ^ b)
    assert p.linear(np.zeros((n, 2), dtype=np.uint64)) == bytes(16)
    e = np.zeros((n, 2), dtype=np.uint64)
    e[n - 1, 1] = 1  # a single bit in the last chunk changes the hash
    assert p.linear(e) != bytes(16)


# ------------------------------------------------------------------------------------ protocol
async def kos_prog(s: Any, plan: list[Any], correlated: bool = False, box: dict | None = None) -> Any:
    """Party 0 = extension sender, party 1 = receiver; ``plan`` lists m (sender) or choices (receiver)."""
    ch = PairChannel(s.net, 1 - s.party, CHANNEL)
    ctx = context_bytes(s.session_id, "kos-test")
    if s.party == 0:
        snd = KOSSender(ctx)
        await snd.setup(ch)
        if box is not None:
            box["delta"] = snd.delta
            box["ready"].set()
        outs = []
        for choices in plan:
            m = len(choices)
            outs.append(await (snd.extend_correlated(ch, m) if correlated else snd.extend(ch, m)))
        return snd.delta, outs
    rcv = KOSReceiver(ctx)
    await rcv.setup(ch)
    outs = []
    for choices in plan:
        outs.append(await (rcv.extend_correlated(ch, choices) if correlated else rcv.extend(ch, choices)))
    return outs


def check_random_ots(plan: list[np.ndarray], results: list[Any]) -> None:
    _, souts = results[0]
    routs = results[1]
    for x, (v0, v1), v in zip(plan, souts, routs, strict=True):
        m = len(x)
        assert v0.shape == v1.shape == v.shape == (m, 2) and v.dtype == np.uint64
        assert np.array_equal(v, np.where(x[:, None], v1, v0)), f"m={m}: receiver got the wrong messages"
        assert np.all(np.any(v0 != v1, axis=1)), f"m={m}: v0 == v1 somewhere"


async def test_random_ots_are_correct_for_many_sizes() -> None:
    plan = [random_bits(m) for m in (1, 127, 128, 1000, 100_000)]
    results = await run_pair(kos_prog, plan)
    check_random_ots(plan, results)


async def test_choice_bits_as_integers_and_all_equal() -> None:
    plan = [np.zeros(300, dtype=np.uint8), np.ones(300, dtype=np.int64)]
    results = await run_pair(kos_prog, plan)
    check_random_ots([p.astype(bool) for p in plan], results)


async def test_repeated_extends_give_fresh_outputs() -> None:
    x = random_bits(5000)
    results = await run_pair(kos_prog, [x, x, x])
    (_, souts), routs = results
    v0s = [bytes(v0) for v0, _ in souts]
    assert len(set(v0s)) == 3
    seen = {bytes(row) for v0, v1 in souts for row in np.concatenate([v0, v1])}
    assert len(seen) == 6 * 5000, "some OT message repeats across extends"
    assert not np.any(np.all(routs[0] == routs[1], axis=1))


async def test_delta_correlation_before_hashing() -> None:
    plan = [random_bits(1000), random_bits(64)]
    (delta, qs), ts = await run_pair(kos_prog, plan, True)
    assert delta.shape == (2,) and delta.dtype == np.uint64 and np.any(delta != 0)
    for x, q, t in zip(plan, qs, ts, strict=True):
        assert np.array_equal(q ^ t, np.where(x[:, None], delta, np.uint64(0)))


async def test_both_directions_at_once() -> None:
    """Each party is sender on one channel and receiver on the other, concurrently (as in MASCOT)."""

    async def prog(s: Any) -> Any:
        ctx = context_bytes(s.session_id, "kos-both")
        out: dict[str, Any] = {}

        async def send(ch: PairChannel) -> None:
            snd = KOSSender(ctx)
            await snd.setup(ch)
            out["send"] = await snd.extend(ch, 777)

        async def recv(ch: PairChannel, x: np.ndarray) -> None:
            rcv = KOSReceiver(ctx)
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


def test_padding_covers_the_check() -> None:
    for m in (1, 63, 64, 1000, 1 << 20):
        rows = padded_rows(m)
        assert rows % 64 == 0 and rows >= m + 168


# ------------------------------------------------------------------------------------ cheating
def flip_u(width_of: Callable[[int], int], cols: list[int], rows: list[int]) -> Callable[[Any], Any]:
    """Rewrite the receiver's [u, commitment]: flip bits ``rows`` of u's columns ``cols``."""

    def mutate(msg: Any) -> Any:
        u = np.frombuffer(bytes(msg[0]), dtype=np.uint64).reshape(128, -1).copy()
        for c in cols:
            for r in rows:
                u[c, r // 64] ^= np.uint64(1) << np.uint64(r % 64)
        return [u.tobytes(), msg[1]]

    return mutate


async def test_inconsistent_choice_bits_in_one_column_fail_the_check() -> None:
    """Flip u in a column where Delta_l = 1: the sender's q changes there only, and the check fails."""
    box: dict[str, Any] = {"ready": trio.Event()}

    def mutate(msg: Any) -> Any:
        bits = unpack_bits(box["delta"], 128)
        col = int(np.flatnonzero(bits)[0])
        return flip_u(lambda m: m, [col], [0, 5, 900])(msg)

    # receiver's messages: 0 = base-OT point A, 1 = [u, com], 2 = opening; wait until Delta is known
    cheat = Tamper(1, mutate, before=box["ready"].wait)
    results = await run_pair(kos_prog, [random_bits(1000)], False, box, interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], AbortError) and results[0].culprit == 1, results[0]
    assert "correlation check" in str(results[0])


async def test_inconsistent_choice_bits_in_many_columns_fail_the_check() -> None:
    """Without knowing Delta: 40 columns flipped in one row pass only if Delta is 0 on all of them."""
    cheat = Tamper(1, flip_u(lambda m: m, list(range(0, 128, 3))[:40], [17]))
    results = await run_pair(kos_prog, [random_bits(500)], interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], AbortError) and results[0].culprit == 1, results[0]


async def test_control_run_with_a_no_op_tamper_succeeds() -> None:
    plan = [random_bits(500)]
    cheat = Tamper(1, flip_u(lambda m: m, [], []))
    results = await run_pair(kos_prog, plan, interceptors={1: cheat})
    assert cheat.hits == 1
    check_random_ots(plan, results)


def in_list(i: int, f: Callable[[bytes], Any]) -> Callable[[Any], Any]:
    def mutate(msg: Any) -> Any:
        msg = list(msg)
        msg[i] = f(bytes(msg[i]))
        return msg

    return mutate


def flip_first_byte(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


@pytest.mark.parametrize(
    "index,mutate,error",
    [
        pytest.param(1, in_list(0, lambda b: b[:-8]), ProtocolError, id="short-u"),
        pytest.param(1, lambda msg: bytes(msg[0]), ProtocolError, id="u-without-list"),
        pytest.param(1, in_list(1, lambda b: b[:31]), ProtocolError, id="short-commitment"),
        pytest.param(2, in_list(1, flip_first_byte), CommitmentError, id="wrong-seed-opening"),
        pytest.param(2, in_list(0, flip_first_byte), CommitmentError, id="wrong-nonce"),
        pytest.param(2, in_list(3, flip_first_byte), AbortError, id="wrong-t-tilde"),
        pytest.param(2, in_list(2, flip_first_byte), AbortError, id="wrong-x-tilde"),
        pytest.param(2, in_list(2, lambda b: b + b"\0"), ProtocolError, id="long-x-tilde"),
        pytest.param(2, lambda msg: list(msg)[:3], ProtocolError, id="short-opening"),
        pytest.param(2, lambda msg: "garbage", ProtocolError, id="string-opening"),
    ],
)
async def test_cheating_receiver_messages(index: int, mutate: Callable[[Any], Any], error: type) -> None:
    """The receiver's KOS messages on the channel are 1 = [u, com] and 2 = [nonce, seed, x~, t~]."""
    cheat = Tamper(index, mutate)
    results = await run_pair(kos_prog, [random_bits(300)], interceptors={1: cheat})
    assert cheat.hits == 1
    assert isinstance(results[0], error) and results[0].culprit == 1, results[0]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda msg: bytes(msg)[:16], id="short-seed"),
        pytest.param(lambda msg: [bytes(msg)], id="list-seed"),
    ],
)
async def test_cheating_sender_seed_share(mutate: Callable[[Any], Any]) -> None:
    """The sender's messages: 0 = base-OT points B_i (it is the base-OT receiver), 1 = its seed share."""
    cheat = Tamper(1, mutate)
    results = await run_pair(kos_prog, [random_bits(300)], interceptors={0: cheat})
    assert cheat.hits == 1
    assert isinstance(results[1], ProtocolError) and results[1].culprit == 0, results[1]
