"""COPE: correlated oblivious product evaluation with the MAC key, MASCOT's authentication engine.

Between an *owner* P_i (who has values ``x``) and a *key holder* P_j (who has its MAC key share
``alpha_j``), one COPE extension gives P_i a vector ``t`` and P_j a vector ``q`` with
``q + t = alpha_j * x``: additive shares of P_j's share of the MAC of ``x``, and neither learns the
other's input.

Set-up (once per ordered pair and MAC key): ``k = bits(p)`` base OTs in which P_j chooses with the
bits ``Delta_l`` of ``alpha_j``. P_i keeps both seeds ``(K0_l, K1_l)``, P_j keeps ``K_{Delta_l, l}``.

Extend ``x`` (``m`` elements), the l-th of ``k`` columns:

    both       t0_l = F(K0_l, ctr), t1_l = F(K1_l, ctr)        (F: AES-CTR to field elements)
    P_i sends  u_l  = t0_l - t1_l + x
    P_j gets   q_l  = t_{Delta_l, l} + Delta_l * u_l  = t0_l + Delta_l * x

and with the gadget vector ``g = (1, 2, 4, ..)``: ``q = sum_l 2^l q_l = sum_l 2^l t0_l + alpha_j x``,
so P_i takes ``t = -sum_l 2^l t0_l``. The powers-of-two sum is Horner's rule with doubling, which in
a Mersenne field is a one-bit rotation.

A cheating P_i can send ``u_l`` built from different ``x`` in different columns; COPE alone does not
stop that. The authentication check (``auth.py``) does: the MACs then fail to match a random linear
combination except with probability about 1/p.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ProtocolError
from ..field import FieldError, PrimeField
from ..net import PairChannel, expect_bytes
from ..ot.base import base_ot_recv, base_ot_send
from ..prg import PRG


def _prf(field: PrimeField, key: bytes, counter: int, m: int) -> np.ndarray:
    """``m`` pseudo-random field elements from a base-OT key and a call counter."""
    seed = hashlib.sha256(b"trio-spdz/cope-prf/v1" + key + counter.to_bytes(8, "big")).digest()
    return field.random(m, PRG(seed))


def gadget_sum(field: PrimeField, columns: np.ndarray) -> np.ndarray:
    """``sum_l 2^l columns[l]`` for ``columns`` of shape ``(k, W, m)``, by Horner's rule."""
    acc = columns[-1]
    for col in columns[-2::-1]:
        acc = field.add(field.add(acc, acc), col)
    return acc


def alpha_bits(field: PrimeField, alpha: int) -> np.ndarray:
    return np.array([(alpha >> i) & 1 for i in range(field.bits)], dtype=bool)


class CopeSender:
    """The owner's side (P_i): holds both seeds of every column."""

    def __init__(self, field: PrimeField) -> None:
        self.field = field
        self._k0: list[bytes] = []
        self._k1: list[bytes] = []
        self._counter = 0

    async def setup(self, ch: PairChannel, context: bytes) -> None:
        k0, k1 = await base_ot_send(ch, self.field.bits, context)
        self._k0 = [bytes(r) for r in k0]
        self._k1 = [bytes(r) for r in k1]
        self._counter = 0

    async def extend(self, ch: PairChannel, x: np.ndarray) -> np.ndarray:
        """Send the corrections for ``x``; return ``t`` with ``q + t = alpha_j * x`` at the peer."""
        if not self._k0:
            raise RuntimeError("COPE sender used before setup")
        f = self.field
        m = x.shape[1]
        ctr = self._counter
        self._counter += 1
        k = f.bits
        t0 = np.empty((k, f.words, m), dtype=np.uint64)
        u = np.empty((f.words, k, m), dtype=np.uint64)  # word-major: a (W, k*m) field vector on the wire
        for col in range(k):
            t0[col] = _prf(f, self._k0[col], ctr, m)
            t1 = _prf(f, self._k1[col], ctr, m)
            f.add(f.sub(t0[col], t1), x, out=u[:, col, :])
        await ch.send(f.to_wire(u.reshape(f.words, k * m)))
        return f.neg(gadget_sum(f, t0))


class CopeReceiver:
    """The key holder's side (P_j): holds one seed per column, chosen by the bits of ``alpha_j``."""

    def __init__(self, field: PrimeField) -> None:
        self.field = field
        self._keys: list[bytes] = []
        self._bits: np.ndarray | None = None
        self._counter = 0

    async def setup(self, ch: PairChannel, alpha: int, context: bytes) -> None:
        bits = alpha_bits(self.field, alpha)
        kc = await base_ot_recv(ch, bits, context)
        self._keys = [bytes(r) for r in kc]
        self._bits = bits
        self._counter = 0

    async def extend(self, ch: PairChannel, m: int) -> np.ndarray:
        """Receive the corrections for ``m`` of the peer's values; return ``q``."""
        if self._bits is None:
            raise RuntimeError("COPE receiver used before setup")
        f = self.field
        ctr = self._counter
        self._counter += 1
        k = f.bits
        peer = ch.peer
        raw = expect_bytes(await ch.recv(), peer, "COPE corrections", k * m * f.elem_bytes)
        try:
            u = f.from_bytes(raw, k * m).reshape(f.words, k, m)
        except FieldError as e:
            raise ProtocolError(f"party {peer} sent invalid COPE corrections: {e}", culprit=peer) from None
        q = np.empty((k, f.words, m), dtype=np.uint64)
        for col in range(k):
            tc = _prf(f, self._keys[col], ctr, m)
            q[col] = f.add(tc, u[:, col, :]) if self._bits[col] else tc
        return gadget_sum(f, q)
