"""How much memory one MASCOT batch takes at one party: the estimate the offline service sizes batches by.

A batch's working set has two parts (measured with ``tracemalloc``, see ``tests/test_mascot.py``):

* **chunk scratch**, independent of the batch size: Gilboa's products run one OT extension of at most
  ``triples.ot_chunk(n)`` OTs at a time per peer and role (the 128-bit OT strings, the extension's own
  matrices, the corrections), COPE one message of at most ``auth.cope_message_bytes(n)`` at a time
  per peer and role, with at most ``auth.COPE_WINDOW`` of them in flight, plus its per-pass buffers
  (``cope.COPE_CHUNK`` values). All peers run at once, but the chunks shrink as ``1 / (n - 1)`` down
  to a floor, so this is about the same at any ``n`` until the floors are reached;
* **per item**, linear in the count: the field vectors of the batch itself (``a``, ``b``, ``c`` and
  their ``tau`` copies, the combination's coefficients, every owner's authenticated shares and MACs,
  the sacrifice's openings), a few dozen field elements per item at each party.

``batch_bytes`` is an upper estimate of the sum (the largest phase, with slack for numpy temporaries;
measured batches use 45-90% of it); ``max_count`` inverts it: the largest batch of a kind whose
estimate fits a byte budget, which is how the offline service turns its ``batch_bytes`` bound into
counts (bounded in bytes, not in items). ``item_bytes`` is what one item occupies in a pool.
"""

from __future__ import annotations

from ..field import PrimeField
from .auth import COPE_WINDOW, cope_message_bytes
from .cope import COPE_CHUNK
from .triples import ot_chunk

OT_STRING = 16  # bytes of one 128-bit OT string
# Gilboa per peer, both roles, in OT-chunk-sized matrices (``ot_chunk(n)`` strings of 16 bytes): the
# OT extension keeps some between calls (its PRG-stream and row buffers, reused: they outlive the
# products and are there during COPE too; measured: KOS 4, SoftSpokenOT about 7), and about seven more
# live during a chunk (the receiver's hashed outputs and the corrections it got, the sender's two
# hashed outputs, the corrections it makes, the extension's messages)
OT_KEPT = 8
GILBOA_MATRICES = 7
# COPE per peer, both roles: the corrections in flight (the window, and the one being made) and the
# per-pass buffers of both roles' work (bits(p) x COPE_CHUNK elements each: five at the owner, one at
# the key holder)
COPE_MESSAGES = COPE_WINDOW + 1
COPE_PASS_BUFFERS = 6
SLACK = 1.25  # numpy temporaries and allocator rounding on top of the counted arrays
BASE_ITEMS = {"triple": 30, "square": 40, "bit": 50, "random": 20, "mask": 20}  # elements per item ...
PER_PARTY_ITEMS = {"triple": 10, "square": 10, "bit": 10, "random": 4, "mask": 2}  # ... + this x n
PARTS = {"triple": 3, "square": 2, "bit": 1, "random": 1, "mask": 1}


def _kind(kind: str) -> str:
    return "mask" if kind.startswith("mask") else kind


def scratch_bytes(field: PrimeField, n: int, gilboa: bool = True) -> int:
    """The chunk scratch of one batch at one party, whatever its size: both roles with every peer.
    ``gilboa=False``: a batch that only authenticates (input masks: COPE, no OT extension), which
    neither uses the extension's matrices nor keeps any."""
    matrix = ot_chunk(n) * OT_STRING
    passes = COPE_PASS_BUFFERS * field.bits * COPE_CHUNK * field.elem_bytes
    cope = COPE_MESSAGES * cope_message_bytes(field, n) + passes
    if not gilboa:
        return int(SLACK * (n - 1) * cope)
    return int(SLACK * (n - 1) * (OT_KEPT * matrix + max(GILBOA_MATRICES * matrix, cope)))


def per_item_bytes(field: PrimeField, n: int, kind: str) -> int:
    """The count-proportional part of a batch's working set, per item of ``kind``."""
    k = _kind(kind)
    return int(SLACK * (BASE_ITEMS[k] + PER_PARTY_ITEMS[k] * n) * field.elem_bytes)


def batch_bytes(field: PrimeField, n: int, kind: str, count: int) -> int:
    """Estimated peak working set, in bytes, of one batch of ``count`` items of ``kind`` at one party."""
    return scratch_bytes(field, n) + count * per_item_bytes(field, n, kind)


def max_count(field: PrimeField, n: int, kind: str, budget: int) -> int:
    """The largest count whose ``batch_bytes`` fits ``budget`` (0 if not even one item does)."""
    room = budget - scratch_bytes(field, n)
    return max(0, room // per_item_bytes(field, n, kind))


def min_budget(field: PrimeField, n: int) -> int:
    """The smallest ``batch_bytes`` budget with which a batch of every kind can hold 1,024 items."""
    return max(batch_bytes(field, n, k, 1024) for k in BASE_ITEMS)


def item_bytes(field: PrimeField, kind: str) -> int:
    """Bytes one item of ``kind`` occupies in a pool (``preprocessing.pool.Batch.nbytes``): value and
    MAC share of each part; an input mask's clear value (kept at its owner) is counted everywhere."""
    k = _kind(kind)
    return (2 * PARTS[k] + (1 if k == "mask" else 0)) * field.elem_bytes
