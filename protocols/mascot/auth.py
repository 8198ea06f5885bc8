"""Authenticated shares of private values: MASCOT's input protocol (Pi_[[.]]), every owner at once.

Owner P_i turns its clear vector ``x`` into ``[[x]]``:

1. it prepends one random element ``x_0`` (it masks the check value below);
2. with every P_j it runs a COPE extension on ``(x_0, x)``: P_i gets ``t_ij``, P_j gets ``q_ji`` with
   ``q_ji + t_ij = alpha_j * x``; P_i's MAC share is ``alpha_i * x + sum_j t_ij``, P_j's is ``q_ji``;
3. it sends each P_j a PRG seed that defines P_j's value shares, and keeps ``x - sum_j PRG(seed_j)``;
4. check: a jointly tossed seed gives coefficients ``r``; P_i announces ``y = sum_h r_h x_h``; every
   party combines its MAC shares with the same ``r`` and ``y`` is MAC-checked like an opened value.

A cheating owner who used inconsistent inputs in its COPE columns, or a wrong correction, ends up
with MACs that do not match ``y`` except with probability about ``2^-64 + 1/p``; the session aborts
and nothing enters a pool. The check value ``y`` reveals nothing about ``x`` because of ``x_0``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..concurrency import task_group
from ..errors import ProtocolError
from ..field import PrimeField
from ..mac_check import combine
from ..net import expect_bytes
from ..prg import PRG
from ..shares import SharedArray
from .cope import COPE_CHUNK, CopeReceiver, CopeSender

if TYPE_CHECKING:
    from ..online import Session

SEED_BYTES = 16
# bytes of COPE corrections in one message, over all of a party's peers at once (32 MB): each peer's
# COPE extensions cover COPE_MESSAGE_BYTES / (n - 1) bytes' worth of elements at a time (at least one
# COPE_CHUNK), so a batch's correction buffers are bounded whatever its size. Every party must use the
# same value (it fixes the chunks, and with them the order in which the PRF streams are read).
COPE_MESSAGE_BYTES = 1 << 25
COPE_WINDOW = 2  # chunks an owner sends ahead of the key holder's acknowledgements
_ACK = b"\x06"


def cope_message_bytes(field: PrimeField, n: int) -> int:
    """The most bytes of COPE corrections one message to one peer carries at ``n`` parties."""
    return cope_values(field, n) * field.bits * field.elem_bytes


def cope_values(field: PrimeField, n: int) -> int:
    """The most values one COPE extension with one peer covers at ``n`` parties: whole COPE_CHUNKs."""
    per = COPE_MESSAGE_BYTES // max(1, n - 1) // (field.bits * field.elem_bytes)
    return max(COPE_CHUNK, per // COPE_CHUNK * COPE_CHUNK)


def cope_chunks(field: PrimeField, m: int, n: int) -> list[tuple[int, int]]:
    """The element ranges ``[c0, c1)`` of one owner's ``m`` values at ``n`` parties, one COPE extension
    (one message of corrections) each."""
    per = cope_values(field, n)
    return [(c0, min(m, c0 + per)) for c0 in range(0, m, per)]


def cope_channel(owner: int, holder: int) -> int:
    """Channel id of the COPE conversation where ``owner`` authenticates to key holder ``holder``."""
    return 0x1000 + (owner << 6) + holder


async def authenticate(
    s: Session,
    senders: dict[int, CopeSender],
    receivers: dict[int, CopeReceiver],
    mine: np.ndarray | None,
    sizes: list[int],
    *,
    keep: dict[int, np.ndarray] | None = None,
) -> list[SharedArray | None]:
    """Authenticate ``sizes[i]`` values from each party ``i`` (``mine`` is ours); ``[[x_i]]`` per owner.

    ``senders[j]`` / ``receivers[j]`` are this party's COPE ends with peer ``j`` (set up under the
    current MAC key). Owners with size 0 contribute nothing and get ``None``. ``keep``, if given,
    receives our COPE outputs ``t_ij`` per key holder ``j`` (``1 + sizes[me]`` columns: the check's
    mask first), for proofs about our values on the pairwise correlations (``ranged.py``); the key
    holder's side ``q_ji`` is its MAC share of our values.
    """
    f = s.field
    me, n = s.party, s.n
    if len(sizes) != n:
        raise ValueError("authenticate needs one size per party")
    if (mine is None) != (sizes[me] == 0) or (mine is not None and mine.shape[1] != sizes[me]):
        raise ValueError("this party's values do not match its announced size")
    ext: np.ndarray | None = None
    if sizes[me]:
        assert mine is not None
        ext = f.concat([f.random(1, PRG()), mine])
    values: dict[int, np.ndarray] = {}
    macs: dict[int, np.ndarray] = {}
    my_value = ext
    # our MAC share of our own values: alpha_i x plus every peer's t, added chunk by chunk as it comes
    my_mac = f.mul(ext, s.ctx.alpha) if ext is not None else None

    async def as_owner(j: int) -> None:  # our values, authenticated to key holder j
        nonlocal my_value
        assert ext is not None and my_mac is not None
        ch = s.pair_channel(j, cope_channel(me, j))
        kept = None
        if keep is not None:
            kept = keep[j] = np.empty((f.words, ext.shape[1]), dtype=np.uint64)
        chunks = cope_chunks(f, ext.shape[1], n)
        for i, (c0, c1) in enumerate(chunks):
            if i >= COPE_WINDOW:  # j has processed chunk i - COPE_WINDOW: at most a window in flight
                expect_bytes(await ch.recv(), j, "a COPE acknowledgement", len(_ACK))
            t = await senders[j].extend(ch, ext[:, c0:c1])
            my_mac[:, c0:c1] = f.add(my_mac[:, c0:c1], t)
            if kept is not None:
                kept[:, c0:c1] = t
        seed = os.urandom(SEED_BYTES)
        await ch.send(seed)
        share_j = f.random(ext.shape[1], PRG(seed))
        my_value = f.sub(my_value, share_j)

    async def as_holder(j: int) -> None:  # j's values, authenticated to us
        ch = s.pair_channel(j, cope_channel(j, me))
        q = np.empty((f.words, sizes[j] + 1), dtype=np.uint64)
        chunks = cope_chunks(f, sizes[j] + 1, n)
        for i, (c0, c1) in enumerate(chunks):
            q[:, c0:c1] = await receivers[j].extend(ch, c1 - c0)
            if i + COPE_WINDOW < len(chunks):
                await ch.send(_ACK)
        macs[j] = q
        seed = bytes(expect_bytes(await ch.recv(), j, "a value-share seed", SEED_BYTES))
        values[j] = f.random(sizes[j] + 1, PRG(seed))

    async with task_group() as nursery:  # both roles at once: each consumes what the other sends
        for j in range(n):
            if j != me:
                if sizes[me]:
                    nursery.start_soon(as_owner, j)
                if sizes[j]:
                    nursery.start_soon(as_holder, j)
    if sizes[me]:
        assert my_value is not None and my_mac is not None
        values[me], macs[me] = my_value, my_mac

    # the check: one coin for all owners; each owner announces y, everyone MAC-checks it
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("mascot-auth-coin", steps[0]))
    prg = PRG(seed)
    announce_step = s.next_step()

    my_y: bytes | None = None
    mac_combs: dict[int, int] = {}
    for i in range(n):
        if not sizes[i]:
            continue
        coeff_seed = prg.random_bytes(16)
        if i == me:
            assert ext is not None
            y, m_i = combine(f, PRG(coeff_seed), [ext, macs[me]])
            my_y = int(y).to_bytes(f.elem_bytes, "little")
            mac_combs[i] = m_i
        else:
            (mac_combs[i],) = combine(f, PRG(coeff_seed), [macs[i]])
    ys: dict[int, int] = {}
    if sizes[me]:
        for j in range(n):
            if j != me:
                await s.net.send(j, announce_step, my_y)
        assert my_y is not None
        ys[me] = int.from_bytes(my_y, "little")
    for i in range(n):
        if sizes[i] and i != me:
            raw = expect_bytes(await s.net.recv(i, announce_step), i, "a check value", f.elem_bytes)
            ys[i] = int.from_bytes(raw, "little")
            if ys[i] >= f.modulus:
                raise ProtocolError(f"party {i} announced an out-of-range check value", culprit=i)
    for i in sorted(ys):
        s.record_opened(f.from_ints([ys[i]]), f.from_ints([mac_combs[i]]))
    await s.mac_check()

    out: list[SharedArray | None] = []
    for i in range(n):
        if not sizes[i]:
            out.append(None)
            continue
        out.append(SharedArray(s.ctx, values[i][:, 1:], macs[i][:, 1:]))
    return out
