"""The kinds of binary material the offline service pools: names, layout, generators and sizes.

The offline service (``actors.offline``) makes field material with MASCOT and, in the same epoch and
batch sessions, the binary material of ``MixedPreprocessing`` (``base.py``) with the generators of
``protocols.binary``. Each such kind is one ``MixedKind`` in ``KINDS``; registering one more is one
line (``register(MixedKind(...))`` below), and the pools, the leader's batch announcements and their
validation, the plan recorder, the memory bounds and the config's watermark keys all follow from it:

* ``and_triple``: ``and_triples(n)``, ``[[a]], [[b]], [[c]]`` with ``c = a AND b``
  (``BitSession.and_triples``);
* ``dabit``: ``dabits(n)``, ``[b]`` and ``[[b]]`` (``generate_dabits``);
* ``edabit:<k>``: ``edabits(n, k)``, ``[r]`` and the ``k`` bits ``[[r_j]]``, LSB first
  (``generate_edabits``);
* ``loose:<k>``: ``loose_edabits(n, k)``, ``[R]`` and the ``k`` low bits of ``R``
  (``generate_loose_edabits``);
* ``owned<j>:<G>``: ``owned_triples(j, n, G)``, field material only: ``n`` groups of ``G`` products
  ``[a_g]``, ``[b]``, ``[c_g] = [a_g b]`` whose ``a`` party ``j`` knows (``protocols.mascot.owned``), for
  products with party ``j``'s own values (``rounds.OwnedMul``). They live here because this registry
  already gives a kind with a parameter its pools, batches, plans, bounds and config keys.
* ``ranged:<W>``: ``ranged_randoms(n, W)``, field material only: ``[R]`` with ``R`` the sum of every
  party's range-proven uniform ``W``-bit random (``protocols.mascot.ranged``), the masks of
  ``rounds.wide_rounding`` truncations. Here for the same reason.

A *sized* kind (one with a bit length) has one pool per ``k``: ``edabit:32`` and ``edabit:41`` are
different pools. Its bit part holds ``k`` bits per item, element by element (``Batch.widths``).

**Field material of a binary batch.** The generators draw field triples, input masks and random bits
through their session's ``s.pre``. In a batch session that is MASCOT itself, run in the same session
(``actors.offline``'s ``_BatchMaterial``), not the service's field pools: a batch runs while the
leader's planner waits for it, so drawing from pools that only later batches can refill would
deadlock; the online sessions keep their pools to themselves; and the batch is self-contained (its
field and binary material pass or fail together, under one epoch).

**Memory.** ``batch_bytes`` estimates a batch's peak working set at one party (measured with
``tracemalloc``: ``tests/test_offline_binary.py``), so that the service can cut counts to its
``[memory] batch_mb`` as it does for MASCOT's (``protocols.mascot.memory``): MASCOT's chunk scratch
(its OT extension's kept buffers are there whatever the batch), one *AND sub-batch* (every AND triple
a batch needs is made in sub-batches of at most ``and_chunk``: ``BoundedBitSession``), and per item the
field material's MASCOT working set, the authenticated bits (random bits, every owner's inputs, with
their correlated-OT rows) and the AND triples held until their circuit uses them. ``item_bytes`` is
what an item occupies in a pool: value and MAC share of a field part, and 1 + 16 bytes per bit (a
``uint8`` share and a 128-bit MAC share).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..binary.bits import AuthBits
from ..binary.dabits import dabit_cost, generate_dabits
from ..binary.edabits import (
    ITEM_SLICE,
    AndSupply,
    edabit_cost,
    generate_edabits,
    generate_loose_edabits,
    max_bits,
)
from ..binary.edabits import loose_edabit_cost as loose_cost
from ..binary.edabits import loose_max_bits as loose_bits
from ..binary.session import BitSession
from ..binary.triples import bucket_size
from ..mascot import memory as mascot_memory

if TYPE_CHECKING:
    from ..binary.party import BinaryParty
    from ..field import PrimeField
    from ..online import Session

Generator = Callable[["Session", BitSession, int, int], Awaitable[tuple[Any, ...]]]
Cost = Callable[[int, int, int], dict[str, int]]

SEP = ":"
MAX_BITS_PER_BATCH = 1 << 22
"""The most bits (items x bit length) one announced batch of a kind may hold: a bound on what a leader
can make the others allocate. An honest leader's batches are far smaller (``[memory] batch_mb``)."""
MAX_ITEMS_PER_BATCH = 1 << 20


@dataclass(frozen=True)
class MixedKind:
    """One kind of binary material: ``family`` is its pool name (``<family>:<k>`` if ``sized``),
    ``method`` the ``MixedPreprocessing`` method that draws it, ``generate(s, bs, n, k)`` makes ``n``
    items (``k`` is 0 for unsized kinds), ``layout`` names each returned part (``"field"``: a
    ``SharedArray`` of one element per item, ``"bits"``: ``AuthBits`` of one bit per item, or ``k``
    for sized kinds), ``cost(n, k, parties)`` is what a call draws (``edabit_cost``'s keys:
    ``and_triples``, ``dabits``, ``input_bits`` per owner, ``items`` input per owner), and ``max_bits``
    (sized kinds only) the largest ``k`` for a field and party count."""

    family: str
    method: str
    generate: Generator
    layout: tuple[str, ...]
    cost: Cost
    max_bits: Callable[[PrimeField, int], int] | None = None
    owner: int | None = None  # owned triples: the party that knows ``a`` (``k`` is the group width)

    @property
    def sized(self) -> bool:
        return self.max_bits is not None

    def name(self, k: int = 0) -> str:
        return f"{self.family}{SEP}{k}" if self.sized else self.family

    def widths(self, k: int) -> list[int]:
        """Elements of each part per item."""
        return [k if (part in ("bits", "group") and self.sized) else 1 for part in self.layout]


KINDS: dict[str, MixedKind] = {}
BY_METHOD: dict[str, MixedKind] = {}


def register(kind: MixedKind) -> MixedKind:
    KINDS[kind.family] = kind
    BY_METHOD[kind.method] = kind
    return kind


async def _and_triples(s: Session, bs: BitSession, n: int, k: int) -> tuple[AuthBits, AuthBits, AuthBits]:
    return await bs.and_triples(n)


async def _dabits(s: Session, bs: BitSession, n: int, k: int) -> tuple[Any, AuthBits]:
    return await generate_dabits(s, bs, n)


def _and_cost(count: int, k: int, parties: int) -> dict[str, int]:
    return {"and_triples": count, "dabits": 0, "input_bits": 0, "items": 0}


def _dabit_cost(count: int, k: int, parties: int) -> dict[str, int]:
    return {"and_triples": 0, "dabits": count, "input_bits": 0, "items": 0}


BOTH = ("field", "bits")  # a field element and its bits, per item
register(MixedKind("and_triple", "and_triples", _and_triples, ("bits", "bits", "bits"), _and_cost))
register(MixedKind("dabit", "dabits", _dabits, BOTH, _dabit_cost))
register(MixedKind("edabit", "edabits", generate_edabits, BOTH, edabit_cost, max_bits))


async def _loose(s: Session, bs: BitSession, n: int, k: int) -> tuple[Any, AuthBits]:
    """Loose edaBits: from every party's range-proven inputs where the batch's field material is
    MASCOT (``protocols.mascot.masks``: no cut-and-choose), else by cut-and-choose."""
    proven = getattr(s.pre, "proven_loose_edabits", None)
    if proven is not None:
        return await proven(bs, n, k)  # type: ignore[no-any-return]
    return await generate_loose_edabits(s, bs, n, k)


register(MixedKind("loose", "loose_edabits", _loose, BOTH, loose_cost, loose_bits))

MAX_OWNERS = 64  # parties whose owned triples have a pool kind (OT channel ids allow 64 parties)
OWNED = "owned"
MAX_OWNED_PRODUCTS = 1 << 19
"""The most products (groups x width) one announced batch of owned triples may hold: a product holds
about 400 bytes while it is made (its ``tau`` candidates, shares, MACs), against a bit's few, so the
bound on bits would let a leader make the others allocate gigabytes. An honest leader's batches are
far smaller (``[memory] batch_mb``: 60,000 products at the default)."""


def _owned_generator(owner: int) -> Generator:
    async def generate(s: Session, bs: BitSession, n: int, k: int) -> tuple[Any, ...]:
        return await s.pre.owned_triples(owner, n, k)  # type: ignore[attr-defined, no-any-return]

    return generate


def _owned_cost(count: int, k: int, parties: int) -> dict[str, int]:
    # for the memory bound: each product's MASCOT work is about a triple's, plus one triple per group
    return {"and_triples": 0, "dabits": 0, "input_bits": 0, "items": 0, "triples": count * (k + 1)}


def _owned_width(field: PrimeField, parties: int) -> int:
    from ..mascot.owned import MAX_WIDTH

    return MAX_WIDTH


for _j in range(MAX_OWNERS):
    register(
        MixedKind(
            f"{OWNED}{_j}",
            f"owned_triples_{_j}",
            _owned_generator(_j),
            ("group", "field", "group"),
            _owned_cost,
            _owned_width,
            owner=_j,
        )
    )


RANGED = "ranged"


async def _ranged(s: Session, bs: BitSession, n: int, k: int) -> tuple[Any, ...]:
    return (await s.pre.ranged_randoms(n, k),)  # type: ignore[attr-defined]


def _ranged_cost(count: int, k: int, parties: int) -> dict[str, int]:
    # every party authenticates v, the k bits and the carry of each item: input masks' work
    return {"and_triples": 0, "dabits": 0, "input_bits": 0, "items": count * (k + 2)}


def _ranged_width(field: PrimeField, parties: int) -> int:
    from ..mascot.ranged import max_width

    return max_width(field, parties)


register(MixedKind(RANGED, "ranged_randoms", _ranged, ("field",), _ranged_cost, _ranged_width))


def owned_name(owner: int, width: int) -> str:
    """The pool of ``owner``'s owned triples in groups of ``width``."""
    return f"{OWNED}{owner}{SEP}{width}"


# ---------------------------------------------------------------------------------------- names
def parse(name: Any) -> tuple[MixedKind, int] | None:
    """``(kind, k)`` for a well-formed mixed pool name (``k`` 0 for unsized kinds), else None. The
    bit length must be written canonically (``edabit:32``, not ``edabit:032``)."""
    if not isinstance(name, str) or len(name) > 40:
        return None
    family, sep, tail = name.partition(SEP)
    kind = KINDS.get(family)
    if kind is None or bool(sep) != kind.sized:
        return None
    if not kind.sized:
        return kind, 0
    if not tail.isascii() or not tail.isdigit() or str(int(tail)) != tail:
        return None
    return kind, int(tail)


def invalid(name: Any, count: Any, field: PrimeField, parties: int) -> str | None:
    """Why ``[name, count]`` is not a batch of mixed material this field and party count can make
    (None if it is, or if ``name`` is no mixed kind at all: the caller checks the field kinds)."""
    parsed = parse(name)
    if parsed is None:
        return None if not (isinstance(name, str) and name.partition(SEP)[0] in KINDS) else "malformed kind"
    kind, k = parsed
    if kind.owner is not None and kind.owner >= parties:
        return f"{kind.family}: there is no party {kind.owner} among {parties}"
    if kind.sized:
        assert kind.max_bits is not None
        top = kind.max_bits(field, parties)
        if not 1 <= k <= top:
            what = "groups of" if kind.owner is not None else "of"
            unit = "products" if kind.owner is not None else "bits"
            return f"{kind.family} {what} {k} {unit}: {field.name} at {parties} parties allows 1 to {top}"
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        return "the count must be a positive integer"
    if count > MAX_ITEMS_PER_BATCH or count * max(k, 1) > MAX_BITS_PER_BATCH:
        return f"{count} items are more than a batch may hold"
    if kind.owner is not None and count * k > MAX_OWNED_PRODUCTS:
        return f"{count} groups of {k} are more products than a batch may hold ({MAX_OWNED_PRODUCTS})"
    return None


def is_mixed(name: str) -> bool:
    return parse(name) is not None


# ---------------------------------------------------------------------------------------- batches
class BoundedBitSession(BitSession):
    """A ``BitSession`` whose ``and_triples`` makes large requests in sub-batches of at most
    ``and_chunk`` (each one bucketed on its own), so that a batch's AND-triple working set is bounded
    whatever its generator asks for at once (``edabits.AndSupply`` asks for up to 2^19)."""

    def __init__(self, s: Session, party: BinaryParty, and_chunk: int) -> None:
        super().__init__(s, party)
        self.and_chunk = max(1, and_chunk)

    async def and_triples(self, count: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        if count <= self.and_chunk:
            return await super().and_triples(count)
        parts = -(-count // self.and_chunk)
        sizes = [count // parts + (1 if i < count % parts else 0) for i in range(parts)]
        made = []
        for size in sizes:  # (not a comprehension: its scope has no zero-argument super())
            made.append(await super().and_triples(size))
        a, b, c = (AuthBits.concat([m[i] for m in made]) for i in range(3))
        return a, b, c


async def make_batch(
    s: Session, party: BinaryParty, kind: MixedKind, k: int, count: int, and_chunk: int
) -> list[Any]:
    """``count`` items of ``kind`` (bit length ``k``), made and checked in session ``s`` (whose
    ``pre`` supplies the field material): the parts, flat, in ``kind.layout`` order."""
    bs = BoundedBitSession(s, party, and_chunk)
    parts = await kind.generate(s, bs, count, k)
    await bs.finish()
    return [p.flatten() if hasattr(p, "flatten") else p for p in parts]


# ---------------------------------------------------------------------------------------- memory
BIT_ITEM = 1 + 16  # a bit in a pool: its uint8 share and its 128-bit MAC share
AND_HELD = 4 * 3 * BIT_ITEM  # an AND triple made and not yet used, with the gathers around it
AUTH_BIT = 48  # per authenticated bit per party: the owner's shares, the OT rows, the announcements
AUTH_BIT_PEER = 32  # ... and per peer: correlated-OT rows and the extension's matrices
# (calibrated: loose edaBits of 33 bits at n = 3, 2,000 and 10,000 per batch, peak RSS 70-90% of the
# estimate)
LEAKY = 100  # per leaky AND triple in a bucketing, at one party: bits, MACs, the permuted copies
LEAKY_PEER = 10  # ... and per peer
# (tracemalloc peaks of and_triples at 30,000 / 100,000 / 300,000, minus the fixed part: 80-190 B
# per leaky triple, falling with the count; peak RSS at 2^19, n = 3: ~140 B, once every slice of
# leaky triples is checked as it is made and the permutation is gathered one component at a time;
# ~300 B before)
MIN_AND_CHUNK = 3044  # AND sub-batches from here on bucket with B = 4 (B = 5 below)
B3_FROM = 276_325  # ... and from here on with B = 3 (``triples.bucket_size``)
AND_SUPPLY_CHUNK = AndSupply.CHUNK
ITEM_HELD = 3 * BIT_ITEM  # per bit of an edaBit item: its sum plane, the bucket check's gathers
# (edabits.ITEM_SLICE items are input and summed at a time)


def leaky_bytes(parties: int) -> int:
    return LEAKY + LEAKY_PEER * (parties - 1)


AND_FIXED_PEER = 72 << 20  # per peer, whatever the count: the OT extensions' stream chunks, a slice's rows


def and_batch_bytes(parties: int, count: int) -> int:
    """The working set of one ``and_triples(count)`` at one party (its ``count * B`` leaky triples,
    and the OT extensions' buffers)."""
    if not count:
        return 0
    return count * bucket_size(count) * leaky_bytes(parties) + AND_FIXED_PEER * (parties - 1)


@lru_cache(maxsize=64)
def and_chunk(field: PrimeField, parties: int, budget: int) -> int:
    """The AND sub-batch of batches under ``budget``: the largest count whose working set takes at
    most 65% of the budget (MASCOT's scratch is not alive at the same time: ``batch_bytes``), at
    least ``MIN_AND_CHUNK``, at most 2^19. The working set is not monotone in the count (the bucket
    shrinks from 4 to 3 at ``B3_FROM`` triples), so the search runs within each bucket size."""
    room = budget * 13 // 20

    def largest(lo: int, hi: int) -> int:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if and_batch_bytes(parties, mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    top = 1 << 19
    if and_batch_bytes(parties, B3_FROM) <= room:
        return largest(B3_FROM, top)
    return largest(MIN_AND_CHUNK, B3_FROM - 1)


def field_need(kind: MixedKind, k: int, count: int, field: PrimeField, parties: int) -> dict[str, int]:
    """The field material a batch draws (MASCOT kinds: triple, mask (every owner's), bit) and its
    binary work: AND triples, authenticated bits (every owner's, counted once each)."""
    cost = kind.cost(count, k, parties)
    das = cost["dabits"]
    dc = dabit_cost(das, field, parties)
    return {
        "triple": dc["triples"] + cost.get("triples", 0),
        "mask": dc["input_masks"] + parties * cost["items"],
        "bit": dc["field_bits"],
        "and_triples": cost["and_triples"] + dc["and_triples"],
        "auth_bits": dc["binary_bits"] * parties + parties * cost["input_bits"],
    }


def batch_bytes(field: PrimeField, parties: int, name: str, count: int, budget: int) -> int:
    """Estimated peak working set, in bytes, of one batch of ``count`` items of the mixed kind
    ``name`` at one party, made under the batch bound ``budget`` (which sets the AND sub-batch)."""
    parsed = parse(name)
    if parsed is None:
        raise ValueError(f"no mixed kind {name!r}")
    kind, k = parsed
    need = field_need(kind, k, count, field, parties)
    ands = need["and_triples"]
    # transient, one at a time: MASCOT's chunk scratch (while the field material is made) or one AND
    # sub-batch (while AND triples are made); the rest is held across the batch
    uses_mascot = any(need[fk] for fk in ("triple", "mask", "bit"))
    gilboa = bool(need["triple"] or need["bit"])  # products; masks alone are COPE only
    transient = mascot_memory.scratch_bytes(field, parties, gilboa) if uses_mascot else 0
    if ands:
        transient = max(transient, and_batch_bytes(parties, min(ands, and_chunk(field, parties, budget))))
    total = transient
    for fk in ("triple", "mask", "bit"):
        total += need[fk] * mascot_memory.per_item_bytes(field, parties, fk)
    auth = need["auth_bits"]
    if cost_items := kind.cost(count, k, parties)["items"]:  # edaBits: inputs and adders in item slices
        per_item = auth // max(1, cost_items)
        total += cost_items * per_item // parties * ITEM_HELD  # every item's sum planes, held
        auth = min(auth, ITEM_SLICE * per_item)
    total += auth * (AUTH_BIT + AUTH_BIT_PEER * (parties - 1))
    # edabits.AndSupply holds one sub-batch at a time
    total += min(ands, AND_SUPPLY_CHUNK, and_chunk(field, parties, budget)) * AND_HELD
    total += count * item_bytes(field, name)
    return int(total)


def max_count(field: PrimeField, parties: int, name: str, budget: int) -> int:
    """The largest count (at most ``MAX_ITEMS_PER_BATCH`` and the bits bound) whose ``batch_bytes``
    fits ``budget``; 0 if not even one item does."""
    parsed = parse(name)
    if parsed is None:
        raise ValueError(f"no mixed kind {name!r}")
    hi = min(MAX_ITEMS_PER_BATCH, MAX_BITS_PER_BATCH // max(parsed[1], 1))
    if parsed[0].owner is not None:
        hi = min(hi, MAX_OWNED_PRODUCTS // parsed[1])
    return _max_count(field, parties, name, budget, hi)


@lru_cache(maxsize=256)
def _max_count(field: PrimeField, parties: int, name: str, budget: int, hi: int) -> int:
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if batch_bytes(field, parties, name, mid, budget) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def item_bytes(field: PrimeField, name: str) -> int:
    """Bytes one item of the mixed kind ``name`` occupies in a pool (``Batch.nbytes``)."""
    parsed = parse(name)
    if parsed is None:
        raise ValueError(f"no mixed kind {name!r}")
    kind, k = parsed
    total = 0
    for part, width in zip(kind.layout, kind.widths(k), strict=True):
        total += (
            2 * field.elem_bytes * (width if part == "group" else 1) if part != "bits" else width * BIT_ITEM
        )
    return total


__all__ = [
    "KINDS",
    "BoundedBitSession",
    "MixedKind",
    "batch_bytes",
    "invalid",
    "item_bytes",
    "make_batch",
    "max_count",
    "parse",
    "register",
]
