"""Owned triples: Beaver triples whose ``a`` one party knows, for products with that party's own data.

A product ``x * s`` where ``x`` is an *owner's* private value (its rows, input by it) and ``s`` is
secret needs no full MASCOT triple. The Beaver opening ``x - a`` tells the owner nothing it does not
know, so ``a`` may be the owner's own random value; and when many products share one secret factor
(``X_j w``: every row of a column times ``w_c``; ``X_j^T p``: every feature of a row times ``p_r``),
they may share one ``b`` as well, so that ``s - b`` is opened once per *group*. One item is one group:

    [a_1 .. a_G]  (the owner knows them),  [b],  [c_g] = [a_g b]

and ``x_g s = c_g + (s - b) a_g + (x_g - a_g) b + (x_g - a_g)(s - b)`` (``rounds.OwnedMul``).

Making ``count`` groups of width ``G`` (``N = count G`` products), owner ``P_o``:

1. **Multiply.** ``P_o`` draws ``tau`` candidates ``a_k`` (``tau N`` values), every party its additive
   share ``b^i`` of each group's ``b``. Only the cross terms ``a_k b^i`` with ``i != o`` need an OLE:
   Gilboa's product over OT (``triples.gilboa_receiver`` / ``gilboa_sender``), ``P_o`` the receiver
   choosing with the bits of ``a_k``, ``P_i`` the sender with its ``b^i`` repeated over the group.
   That is ``n - 1`` OT sessions per product where a MASCOT triple runs ``n (n - 1)``.
2. **Combine.** Coin-tossed ``r``: ``a = sum_k r_k a_k``, ``c = sum_k r_k c_k``. A sender that sends
   wrong corrections for some bits learns, from whether the check below passes, bits of the ``a_k``;
   the random combination leaves ``a`` uniform anyway (``tau = 3`` as in MASCOT's combine, and the
   same argument: ``a`` is the mask of the owner's value, as MASCOT's ``a`` is of a secret).
3. **Authenticate** (MASCOT's input protocol, ``auth.py``): ``P_o`` its ``a``; every party its share of
   ``b`` (one per group) and of ``c``.
4. **Check.** Coin-tossed ``t`` (one per product): with ``u_m = sum_g t_mg a_mg`` (linear), one
   checked MASCOT triple per group gives ``u_m b_m``, and ``z = sum_mg t_mg c_mg - sum_m u_m b_m``
   must open to zero. Any error ``e`` in some ``c`` (a wrong correction, a receiver choosing with other
   bits than its ``a_k``, a party authenticating a wrong share) makes ``z = sum t e``, which is zero
   with probability ``1/p`` over ``t``; a wrong MAC fails the MAC check of the openings. This replaces
   MASCOT's sacrifice (which would need a second ``c`` and its authentication per product) by one
   triple per group.

Cost per product at ``n`` parties: ``tau bits(p) (n - 1)`` OTs and corrections, the authentication
of ``a`` (``n - 1`` COPE extensions) and of ``c`` (``n (n - 1)``), and ``1 / G`` of a triple and of ``b``'s
authentication: at ``n = 3``, ``p = 2^127 - 1``, ``G = 32`` 12.9 kB per party against a MASCOT triple's
38.7 kB, and three times the rate (``offline_bench.py --owned 32``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..concurrency import task_group
from ..errors import AbortError
from ..prg import PRG
from ..rounds import sum_groups
from ..shares import SharedArray
from .auth import authenticate
from .triples import TAU, gilboa_receiver, gilboa_sender, ot_channel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..online import Session
    from ..ot.extension import OTExtensionReceiver, OTExtensionSender
    from .cope import CopeReceiver, CopeSender

MAX_WIDTH = 1024
"""The widest group: the products that share one ``b``."""

U64 = np.uint64


async def generate_owned_triples(
    s: Session,
    cope_send: dict[int, CopeSender],
    cope_recv: dict[int, CopeReceiver],
    ot_send: dict[int, OTExtensionSender],
    ot_recv: dict[int, OTExtensionReceiver],
    triples: Callable[[int], Awaitable[tuple[SharedArray, SharedArray, SharedArray]]],
    owner: int,
    count: int,
    width: int,
) -> tuple[SharedArray, SharedArray, SharedArray]:
    """``count`` checked groups for ``owner``: ``([[a]]`` (``count width``), ``[[b]]`` (``count``),
    ``[[c]]`` (``count width``)), ``c = a * b`` with ``b`` repeated over each group's ``width``
    products; ``a``'s clear values are the owner's (they are not returned: an opening ``x - a`` is how
    the owner's value enters a product). ``triples(m)`` supplies the check's ``m`` checked triples.
    Raises ``AbortError`` if the check fails."""
    f = s.field
    me, n = s.party, s.n
    if not 0 <= owner < n:
        raise ValueError(f"no party {owner} to own the triples")
    if count < 0 or not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"owned triples: {count} groups of width {width} (1 to {MAX_WIDTH})")
    if count == 0:
        empty = SharedArray(s.ctx, f.zeros(0), f.zeros(0))
        return empty, empty, empty
    total = count * width
    prg = PRG()
    b_mine = f.random(count, prg)
    b_rep = np.repeat(b_mine, width, axis=1)  # (W, total): each group's share over its products
    if me == owner:
        a_mine = f.random(TAU * total, prg)  # copy-major: element k * total + e is copy k of product e
        c_mine = np.empty_like(a_mine)
        for k in range(TAU):
            sl = slice(k * total, (k + 1) * total)
            f.mul_into(a_mine[:, sl], b_rep, c_mine[:, sl])
    else:
        c_mine = f.zeros(TAU * total)

    async with task_group() as nursery:
        if me == owner:
            for j in range(n):
                if j != me:
                    ch = s.pair_channel(j, ot_channel(me, j))
                    nursery.start_soon(gilboa_receiver, f, ot_recv[j], ch, a_mine, c_mine, n)
        else:
            ch = s.pair_channel(owner, ot_channel(owner, me))
            nursery.start_soon(gilboa_sender, f, ot_send[owner], ch, b_rep, TAU * total, c_mine, n)
    del b_rep

    # combine: a = sum_k r_k a_k (the owner), c = sum_k r_k c_k (everyone's shares)
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("owned-combine", steps[0]))
    r = f.random(TAU * total, PRG(seed))
    a_comb = f.zeros(total) if me == owner else None
    c_comb = f.zeros(total)
    tmp = np.empty((f.words, total), dtype=U64)
    for k in range(TAU):
        sl = slice(k * total, (k + 1) * total)
        if a_comb is not None:
            a_comb = f.add(a_comb, f.mul_into(r[:, sl], a_mine[:, sl], tmp))
        c_comb = f.add(c_comb, f.mul_into(r[:, sl], c_mine[:, sl], tmp))
    del c_mine, r, tmp
    if me == owner:
        del a_mine

    # authenticate: the owner's a, everyone's shares of b and c
    sizes = [count + total + (total if i == owner else 0) for i in range(n)]
    mine = np.concatenate([b_mine, c_comb] + ([a_comb] if a_comb is not None else []), axis=1)
    owned = await authenticate(s, cope_send, cope_recv, mine, sizes)
    del mine, c_comb, a_comb
    b_sh: SharedArray | None = None
    c_sh: SharedArray | None = None
    a_sh: SharedArray | None = None
    for i, part in enumerate(owned):
        assert part is not None
        pieces = part.split([count, total] + ([total] if i == owner else []))
        b_sh = pieces[0] if b_sh is None else b_sh + pieces[0]
        c_sh = pieces[1] if c_sh is None else c_sh + pieces[1]
        if i == owner:
            a_sh = pieces[2]
    del owned
    assert a_sh is not None and b_sh is not None and c_sh is not None

    # check: z = sum t c - sum_m (sum_g t a) b_m = 0, one checked triple per group
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("owned-check", steps[0]))
    t = f.random(total, PRG(seed))
    ta, tc = a_sh.mul_public_field(t), c_sh.mul_public_field(t)
    u = sum_groups(ta, count)
    x, y, xy = await triples(count)
    (eps, dlt) = await s.open_unchecked([u - x, b_sh - y])
    ub = xy + y.mul_public_field(eps) + x.mul_public_field(dlt)
    ub = ub.add_public_field(f.mul(eps, dlt))
    z = tc.sum() - ub.sum()
    (zero,) = await s.open_unchecked([z])
    await s.mac_check()
    if np.any(zero):
        raise AbortError(f"owned triples of party {owner} failed their check (a party deviated)")
    return a_sh, b_sh, c_sh
