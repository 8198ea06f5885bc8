"""Base oblivious transfer: Chou-Orlandi "simplest OT" over ed25519's prime-order subgroup.

OT extension needs 128 real OTs per ordered pair of parties, once; everything after that is symmetric
crypto. This module supplies them with the cheapest public-key protocol that has a batch form: the
sender publishes one point A = aG, the receiver answers one point per OT, B_i = b_i G (choice 0) or
A + b_i G (choice 1), and the keys are

    sender    k0_i = H(i, A, B_i, a B_i)        k1_i = H(i, A, B_i, a (B_i - A))
    receiver  kc_i = H(i, A, B_i, b_i A)

so one message each way carries the whole batch. The sender computes ``a (B_i - A)`` as
``a B_i - a A`` with ``a A`` computed once: one scalar multiplication per OT instead of two, the same
keys. The group work runs in trio worker threads (libsodium releases the GIL), so the base OTs of
different pairs and roles overlap on several cores. Group arithmetic is libsodium's through PyNaCl's
bindings, on the prime-order subgroup of edwards25519 with unclamped scalars.

Why the checks are what they are: every received point goes through
``crypto_core_ed25519_is_valid_point``, which rejects non-canonical encodings, points off the curve,
points outside the prime-order subgroup and small-order points (the identity included). Without it a
malicious peer could send a point with a small-order component and learn bits of our scalar from which
key we derive. ``B_i = A`` is refused too: it would make ``B_i - A`` the identity. Any failure raises an
``AbortError`` naming the peer; a malformed message raises ``ProtocolError`` (also an ``AbortError``).

H is SHA-256 over a domain label, a caller context (session, channel and roles, so keys from different
runs can never coincide), A, B_i, the index and the shared point, truncated to 16 bytes: the keys are
used as AES-128 keys (PRG seeds) by the OT extension.

Keys are returned as numpy ``uint8`` arrays of shape ``(count, 16)``: row i is OT i's key.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from ..concurrency import run_sync
from ..errors import AbortError
from ..net import PairChannel, expect_bytes

KEY_BYTES = 16
POINT_BYTES = 32
_DOMAIN = b"trio-spdz/base-ot/chou-orlandi/v1"


def _random_scalar() -> bytes:
    """A uniform nonzero scalar mod the group order (64 random bytes reduced: bias < 2^-250)."""
    while True:
        s = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(s):
            return s


def _context(ch: PairChannel, sender: int, receiver: int, context: bytes) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    ids = (ch.channel, sender, receiver)
    for part in (context, *(i.to_bytes(4, "big") for i in ids)):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def _key(ctx: bytes, index: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    h.update(ctx)
    h.update(index.to_bytes(4, "big"))
    h.update(a_point)
    h.update(b_point)
    h.update(shared)
    return h.digest()[:KEY_BYTES]


def _check_point(p: bytes, peer: int, what: str) -> None:
    if not sodium.crypto_core_ed25519_is_valid_point(p):
        raise AbortError(
            f"party {peer} sent an invalid group element for {what} "
            "(not canonical, not on the curve, not in the prime-order subgroup, or of small order)",
            culprit=peer,
        )


async def base_ot_send(
    ch: PairChannel, count: int = 128, context: bytes = b""
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``count`` OTs as the sender; return ``(k0, k1)``, two ``uint8`` arrays of shape ``(count, 16)``.

    ``context`` should name the session (e.g. ``commitments.context_bytes(session_id, ...)``); the
    channel id and both party ids are bound in as well. Both ends must pass the same context.
    """
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    peer = ch.peer
    ctx = _context(ch, ch.party, peer, context)
    a = _random_scalar()
    a_point = sodium.crypto_scalarmult_ed25519_base_noclamp(a)
    await ch.send(a_point)
    msg = expect_bytes(await ch.recv(), peer, "base-OT receiver points", count * POINT_BYTES)
    raw = bytes(msg)

    def keys() -> tuple[np.ndarray, np.ndarray]:
        k0 = np.empty((count, KEY_BYTES), dtype=np.uint8)
        k1 = np.empty((count, KEY_BYTES), dtype=np.uint8)
        a_a = sodium.crypto_scalarmult_ed25519_noclamp(a, a_point)  # aA, once: a(B - A) = aB - aA
        for i in range(count):
            b_point = raw[i * POINT_BYTES : (i + 1) * POINT_BYTES]
            _check_point(b_point, peer, f"base OT {i}")
            if b_point == a_point:
                raise AbortError(f"party {peer} echoed the sender's point in base OT {i}", culprit=peer)
            try:
                s0 = sodium.crypto_scalarmult_ed25519_noclamp(a, b_point)
            except SodiumRuntimeError as e:  # identity result: impossible for valid points, but never crash
                raise AbortError(f"party {peer} sent a degenerate point in base OT {i}", culprit=peer) from e
            # a valid B != A makes a(B - A) a non-identity point of the prime-order group
            s1 = sodium.crypto_core_ed25519_sub(s0, a_a)
            k0[i] = np.frombuffer(_key(ctx, i, a_point, b_point, s0), dtype=np.uint8)
            k1[i] = np.frombuffer(_key(ctx, i, a_point, b_point, s1), dtype=np.uint8)
        return k0, k1

    # libsodium runs without the GIL: in a worker thread, other base OTs (other pairs, the peer) overlap
    return await run_sync(keys)


async def base_ot_recv(ch: PairChannel, choices: np.ndarray, context: bytes = b"") -> np.ndarray:
    """Run ``len(choices)`` OTs as the receiver; return ``k_c``, ``uint8`` of shape ``(count, 16)``.

    ``choices`` is a 1-d array of bools or 0/1 integers (the count is its length). ``context`` must
    equal the sender's.
    """
    c = np.asarray(choices)
    if c.ndim != 1 or c.size == 0:
        raise ValueError("choices must be a non-empty 1-d array")
    if c.dtype != np.bool_ and not np.all((c == 0) | (c == 1)):
        raise ValueError("choices must be bits")
    bits = c.astype(bool).tolist()
    count = len(bits)
    peer = ch.peer
    ctx = _context(ch, peer, ch.party, context)
    a_point = bytes(expect_bytes(await ch.recv(), peer, "base-OT sender point", POINT_BYTES))
    _check_point(a_point, peer, "the base-OT sender point")

    def points() -> tuple[list[bytes], list[bytes]]:
        scalars: list[bytes] = []
        pts: list[bytes] = []
        for bit in bits:
            b = _random_scalar()
            p = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
            if bit:
                p = sodium.crypto_core_ed25519_add(a_point, p)
            scalars.append(b)
            pts.append(p)
        return scalars, pts

    def keys() -> np.ndarray:
        out = np.empty((count, KEY_BYTES), dtype=np.uint8)
        for i in range(count):
            shared = sodium.crypto_scalarmult_ed25519_noclamp(scalars[i], a_point)
            out[i] = np.frombuffer(_key(ctx, i, a_point, pts[i], shared), dtype=np.uint8)
        return out

    scalars, pts = await run_sync(points)
    await ch.send(b"".join(pts))
    return await run_sync(keys)
