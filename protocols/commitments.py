"""Hash commitments and commit-then-reveal coin tossing.

A commitment is SHA-256 over a domain label, the context (session, step, committing party), a 32-byte
random nonce and the data. Binding the context stops a party from replaying another party's commitment
or an old one. Openings are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from .errors import CommitmentError
from .net import Net, exchange, expect_bytes, expect_list

NONCE_BYTES = 32
DIGEST_BYTES = 32
_DOMAIN = b"trio-spdz/commit/v1"


def _digest(context: bytes, party: int, nonce: bytes, data: bytes) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    for part in (context, party.to_bytes(4, "big"), nonce):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(data)
    return h.digest()


def commit(context: bytes, party: int, data: bytes) -> tuple[bytes, bytes]:
    """Return ``(commitment, nonce)``; send the commitment now and ``(nonce, data)`` later."""
    nonce = os.urandom(NONCE_BYTES)
    return _digest(context, party, nonce, data), nonce


def verify(context: bytes, party: int, commitment: bytes, nonce: bytes, data: bytes) -> bool:
    return hmac.compare_digest(_digest(context, party, nonce, data), commitment)


async def commit_and_reveal(net: Net, steps: tuple[int, int], context: bytes, data: bytes) -> list[bytes]:
    """Every party commits to its ``data``, then all reveal; returns everyone's verified data.

    Raises ``CommitmentError`` naming the first party whose opening does not match.
    """
    com, nonce = commit(context, net.party, data)
    coms = await exchange(net, steps[0], com)
    for j, c in enumerate(coms):
        coms[j] = bytes(expect_bytes(c, j, "a commitment", DIGEST_BYTES))
    openings = await exchange(net, steps[1], [nonce, data])
    out: list[bytes] = []
    for j, op in enumerate(openings):
        nonce_j, data_j = expect_list(op, j, "commitment opening", 2)
        nonce_j = bytes(expect_bytes(nonce_j, j, "a commitment nonce", NONCE_BYTES))
        data_j = bytes(expect_bytes(data_j, j, "a commitment opening"))
        if not verify(context, j, coms[j], nonce_j, data_j):
            raise CommitmentError(f"party {j} opened its commitment to a different value", culprit=j)
        out.append(data_j)
    return out


async def coin_toss(net: Net, steps: tuple[int, int], context: bytes, nbytes: int = 32) -> bytes:
    """A joint random seed no coalition of up to n-1 parties can bias: commit, reveal, hash."""
    mine = os.urandom(32)
    seeds = await commit_and_reveal(net, steps, context, mine)
    for j, s in enumerate(seeds):
        if len(s) != 32:
            raise CommitmentError(f"party {j} contributed a coin-toss seed of {len(s)} bytes", culprit=j)
    h = hashlib.sha256(b"trio-spdz/coin/v1" + context)
    for s in seeds:
        h.update(s)
    out = h.digest()
    while len(out) < nbytes:
        out += hashlib.sha256(out).digest()
    return out[:nbytes]


def context_bytes(*parts: Any) -> bytes:
    """A canonical byte string for a tuple of ints/strings/bytes (used as commitment context)."""
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        h.update(len(b).to_bytes(4, "big"))
        h.update(b)
    return h.digest()
